package sqlcheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// How these lists were made. The candidates are every function DuckDB
// v1.5.6 (the version go.mod pins, with the extensions linked into the
// engine: core_functions, icu, json, parquet, autocomplete) lists in
// duckdb_functions() inside the engine's locked-down database, by name:
// the scalar, aggregate and macro functions for ExpressionFunctions, the
// table functions and table macros for TableFunctions. That list is
// committed as testdata/duckdb_functions.tsv; the engine's
// TestFunctionSnapshot fails when the linked DuckDB lists anything else
// (rerun it with -update after an upgrade), and TestEveryFunctionClassified
// fails until every name of the snapshot is classified here and every name
// here is in the snapshot, so the lists cannot silently rot.
//
// Each name was reviewed by group: a function is allowed when its result
// depends only on its arguments. It is refused when it reads anything
// else — DuckDB's settings, variables, catalog, session, log, the clock or
// a random source —, acts on the session or the world, evaluates or plans
// SQL text, or is internal to DuckDB. Every aggregate is allowed, and must
// stay so: list_aggr and its aliases call an aggregate named by a string,
// which the parse tree does not show (TestEveryFunctionClassified checks).
// Macros were reviewed by their definition; the engine's
// TestAllowedMacrosPassTheCheck runs each allowed macro's body through
// this check. Names that DuckDB's binder handles itself, not found in
// duckdb_functions() (unnest and unlist in a SELECT list), are listed in
// binderFunctions.
//
// Random numbers and the clock are refused although they reveal nothing
// of the coordinator: a result must be a function of the datasets, the
// agreed text and its parameters, so that the parties know what the text
// they signed releases (a date is written into the text or passed as a
// parameter). Sampling (USING SAMPLE) is refused for the same reason.

// Verdict is the check's decision on one function name.
type Verdict struct {
	Allowed bool
	// Note is the group an allowed function was reviewed in, or why a
	// refused one is refused (a clause completing "the function ...").
	Note string
}

type group struct {
	verdict Verdict
	names   []string
}

func allow(what string, names ...string) group {
	return group{Verdict{Allowed: true, Note: what}, names}
}

func refuse(why string, names ...string) group {
	return group{Verdict{Allowed: false, Note: why}, names}
}

// classify builds a list, refusing (at init) a name classified twice.
func classify(groups ...group) map[string]Verdict {
	m := map[string]Verdict{}
	for _, g := range groups {
		for _, n := range g.names {
			key := asciiLower(n)
			if _, dup := m[key]; dup {
				panic(fmt.Sprintf("sqlcheck: function %q is classified twice", n))
			}
			m[key] = g.verdict
		}
	}
	return m
}

// ExpressionFunctions returns the verdict on every scalar, aggregate and
// window function, macro and operator an expression can call, by
// lower-case name. A name not in it is refused.
func ExpressionFunctions() map[string]Verdict { return maps.Clone(exprFunctions) }

// TableFunctions returns the verdict on every table function and table
// macro, by lower-case name. A name not in it is refused.
func TableFunctions() map[string]Verdict { return maps.Clone(tableFunctions) }

// binderFunctions are the names ExpressionFunctions allows that DuckDB's
// binder implements itself, without an entry in duckdb_functions().
var binderFunctions = []string{"unlist", "unnest"}

func allowedTableFunctions() string {
	var names []string
	for n, v := range tableFunctions {
		if v.Allowed {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// arityRule refuses an allowed function called with a number of arguments
// that makes it read something other than its arguments.
func arityRule(name string, nargs int, table bool) string {
	if !table && name == "age" && nargs == 1 {
		return "measures from the current date, so it reads the clock; call age(end, start) with both dates"
	}
	return ""
}

const (
	whyCatalog = "reads DuckDB's catalog, settings, variables or session, not the datasets"
	whyClock   = "reads the clock, so the result would depend on when the run happens"
	whyRandom  = "draws random numbers, so the result would not be a function of the datasets"
	whyState   = "acts on the session or the world (sequences, logging, sleeping)"
	whySQL     = "parses, plans or serialises SQL text"
	whyPG      = "is a PostgreSQL catalog helper of pg_catalog, describing or reading the catalog"
	whyIntern  = "is internal to DuckDB's optimizer"
)

var exprFunctions = classify(
	allow("operators written as symbols",
		"!__postfix", "!~~", "!~~*", "%", "&", "&&", "*", "**", "+", "-", "->>", "/", "//",
		"<->", "<<", "<=>", "<@", ">>", "@", "@>", "^", "^@", "|", "||", "~", "~~", "~~*", "~~~"),
	allow("arithmetic and mathematics",
		"abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bit_count", "cbrt", "ceil", "ceiling",
		"cos", "cosh", "cot", "degrees", "divide", "even", "exp", "factorial", "fdiv", "floor", "fmod", "gamma", "gcd",
		"greatest_common_divisor", "isfinite", "isinf", "isnan", "lcm", "least_common_multiple", "lgamma", "ln", "log",
		"log10", "log2", "mod", "multiply", "nextafter", "pi", "pow", "power", "radians", "round", "round_even",
		"roundbankers", "sign", "signbit", "sin", "sinh", "sqrt", "subtract", "tan", "tanh", "trunc", "xor",
		"equi_width_bins"),
	allow("conditionals and comparisons",
		"greatest", "least", "nullif", "constant_or_null", "error", "switch", "is_histogram_other_bin"),
	allow("strings",
		"ascii", "bar", "bit_length", "char_length", "character_length", "chr", "concat", "concat_ws", "contains",
		"ends_with", "format", "formatReadableDecimalSize", "formatReadableSize", "format_bytes", "ilike_escape", "instr",
		"lcase", "left", "left_grapheme", "length_grapheme", "like_escape", "lower", "lpad", "ltrim", "nfc_normalize",
		"not_ilike_escape", "not_like_escape", "ord", "parse_dirname", "parse_dirpath", "parse_filename",
		"parse_formatted_bytes", "parse_path", "position", "prefix", "printf", "repeat", "replace", "reverse", "right",
		"right_grapheme", "rpad", "rtrim", "split", "split_part", "starts_with", "str_split", "string_split",
		"string_to_array", "strip_accents", "strlen", "strpos", "substr", "substring", "substring_grapheme", "suffix",
		"translate", "trim", "ucase", "unicode", "upper", "url_decode", "url_encode"),
	allow("regular expressions",
		"regexp_escape", "regexp_extract", "regexp_extract_all", "regexp_full_match", "regexp_matches", "regexp_replace",
		"regexp_split_to_array", "regexp_split_to_table", "str_split_regex", "string_split_regex"),
	allow("text similarity",
		"damerau_levenshtein", "editdist3", "hamming", "jaccard", "jaro_similarity", "jaro_winkler_similarity",
		"levenshtein", "mismatches"),
	allow("dates, times and intervals (computed from their arguments; the session's time zone is fixed to UTC)",
		"age", "century", "date_add", "date_diff", "date_part", "date_sub", "date_trunc", "datediff", "datepart",
		"datesub", "datetrunc", "day", "dayname", "dayofmonth", "dayofweek", "dayofyear", "days_in_month", "decade",
		"epoch", "epoch_ms", "epoch_ns", "epoch_us", "era", "hour", "isodow", "isoyear", "julian", "last_day",
		"make_date", "make_time", "make_timestamp", "make_timestamp_ms", "make_timestamp_ns", "make_timestamptz",
		"microsecond", "millennium", "millisecond", "minute", "month", "monthname", "nanosecond", "normalized_interval",
		"quarter", "second", "strftime", "strptime", "time_bucket", "timetz_byte_comparable", "timezone",
		"timezone_hour", "timezone_minute", "to_centuries", "to_days", "to_decades", "to_hours", "to_microseconds",
		"to_millennia", "to_milliseconds", "to_minutes", "to_months", "to_quarters", "to_seconds", "to_timestamp",
		"to_weeks", "to_years", "try_strptime", "week", "weekday", "weekofyear", "year", "yearweek"),
	allow("blobs, bits, encodings and hashes",
		"base64", "bin", "bit_position", "bitstring", "decode", "encode", "from_base64", "from_binary", "from_hex",
		"get_bit", "hash", "hex", "md5", "md5_number", "md5_number_lower", "md5_number_upper", "octet_length",
		"set_bit", "sha1", "sha256", "to_base", "to_base64", "to_binary", "to_hex", "unbin", "unhex",
		"uuid_extract_timestamp", "uuid_extract_version"),
	allow("lists and arrays (lambdas are checked like any expression; list_aggr calls an aggregate by name, and every aggregate is allowed)",
		"aggregate", "apply", "array_aggr", "array_aggregate", "array_append", "array_apply", "array_cat",
		"array_concat", "array_contains", "array_cosine_distance", "array_cosine_similarity", "array_cross_product",
		"array_distance", "array_distinct", "array_dot_product", "array_extract", "array_filter", "array_grade_up",
		"array_has", "array_has_all", "array_has_any", "array_indexof", "array_inner_product", "array_intersect",
		"array_length", "array_negative_dot_product", "array_negative_inner_product", "array_pop_back",
		"array_pop_front", "array_position", "array_prepend", "array_push_back", "array_push_front", "array_reduce",
		"array_resize", "array_reverse", "array_reverse_sort", "array_select", "array_slice", "array_sort",
		"array_to_string", "array_to_string_comma_default", "array_transform", "array_unique", "array_value",
		"array_where", "array_zip", "cardinality", "element_at", "filter", "flatten", "generate_series",
		"generate_subscripts", "grade_up", "len", "length", "list_aggr", "list_aggregate", "list_any_value",
		"list_append", "list_apply", "list_approx_count_distinct", "list_avg", "list_bit_and", "list_bit_or",
		"list_bit_xor", "list_bool_and", "list_bool_or", "list_cat", "list_concat", "list_contains",
		"list_cosine_distance", "list_cosine_similarity", "list_count", "list_distance", "list_distinct",
		"list_dot_product", "list_element", "list_entropy", "list_extract", "list_filter", "list_first",
		"list_grade_up", "list_has", "list_has_all", "list_has_any", "list_histogram", "list_indexof",
		"list_inner_product", "list_intersect", "list_kurtosis", "list_kurtosis_pop", "list_last", "list_mad",
		"list_max", "list_median", "list_min", "list_mode", "list_negative_dot_product", "list_negative_inner_product",
		"list_pack", "list_position", "list_prepend", "list_product", "list_reduce", "list_resize", "list_reverse",
		"list_reverse_sort", "list_select", "list_sem", "list_skewness", "list_slice", "list_sort", "list_stddev_pop",
		"list_stddev_samp", "list_string_agg", "list_sum", "list_transform", "list_unique", "list_value",
		"list_var_pop", "list_var_samp", "list_where", "list_zip", "range", "reduce", "unpivot_list"),
	allow("structs, maps, unions and variants",
		"map", "map_concat", "map_contains", "map_contains_entry", "map_contains_value", "map_entries", "map_extract",
		"map_extract_value", "map_from_entries", "map_keys", "map_values", "remap_struct", "row", "struct_concat",
		"struct_contains", "struct_extract", "struct_extract_at", "struct_has", "struct_indexof", "struct_insert",
		"struct_keys", "struct_pack", "struct_position", "struct_update", "struct_values", "union_extract", "union_tag",
		"union_value", "variant_bytes_to_variant", "variant_extract", "variant_normalize", "variant_to_parquet_variant",
		"variant_typeof"),
	allow("JSON values",
		"array_to_json", "from_json", "from_json_strict", "json", "json_array", "json_array_length", "json_contains",
		"json_exists", "json_extract", "json_extract_path", "json_extract_path_text", "json_extract_string",
		"json_group_array", "json_group_object", "json_group_structure", "json_keys", "json_merge_patch", "json_object",
		"json_pretty", "json_quote", "json_structure", "json_transform", "json_transform_strict", "json_type",
		"json_valid", "json_value", "row_to_json", "to_json"),
	allow("geometry values",
		"st_asbinary", "st_astext", "st_aswkb", "st_aswkt", "st_crs", "st_geomfromwkb", "st_intersects_extent"),
	allow("types, enums and casts (of their arguments)",
		"alias", "can_cast_implicitly", "cast_to_type", "create_sort_key", "enum_code", "enum_first", "enum_last",
		"enum_range", "enum_range_boundary", "get_type", "replace_type", "typeof"),
	allow("collations (ICU sort keys of their argument)",
		"icu_sort_key",
		"icu_collate_af", "icu_collate_am", "icu_collate_ar", "icu_collate_ar_sa", "icu_collate_as", "icu_collate_az",
		"icu_collate_be", "icu_collate_bg", "icu_collate_bn", "icu_collate_bo", "icu_collate_br", "icu_collate_bs",
		"icu_collate_ca", "icu_collate_ceb", "icu_collate_chr", "icu_collate_cs", "icu_collate_cy", "icu_collate_da",
		"icu_collate_de", "icu_collate_de_at", "icu_collate_dsb", "icu_collate_dz", "icu_collate_ee", "icu_collate_el",
		"icu_collate_en", "icu_collate_en_us", "icu_collate_eo", "icu_collate_es", "icu_collate_et", "icu_collate_fa",
		"icu_collate_fa_af", "icu_collate_ff", "icu_collate_fi", "icu_collate_fil", "icu_collate_fo", "icu_collate_fr",
		"icu_collate_fr_ca", "icu_collate_ga", "icu_collate_gl", "icu_collate_gu", "icu_collate_ha", "icu_collate_haw",
		"icu_collate_he", "icu_collate_he_il", "icu_collate_hi", "icu_collate_hr", "icu_collate_hsb", "icu_collate_hu",
		"icu_collate_hy", "icu_collate_id", "icu_collate_id_id", "icu_collate_ig", "icu_collate_is", "icu_collate_it",
		"icu_collate_ja", "icu_collate_ka", "icu_collate_kk", "icu_collate_kl", "icu_collate_km", "icu_collate_kn",
		"icu_collate_ko", "icu_collate_kok", "icu_collate_ku", "icu_collate_ky", "icu_collate_lb", "icu_collate_lkt",
		"icu_collate_ln", "icu_collate_lo", "icu_collate_lt", "icu_collate_lv", "icu_collate_mk", "icu_collate_ml",
		"icu_collate_mn", "icu_collate_mr", "icu_collate_ms", "icu_collate_mt", "icu_collate_my", "icu_collate_nb",
		"icu_collate_nb_no", "icu_collate_ne", "icu_collate_nl", "icu_collate_nn", "icu_collate_noaccent",
		"icu_collate_om", "icu_collate_or", "icu_collate_pa", "icu_collate_pa_in", "icu_collate_pl", "icu_collate_ps",
		"icu_collate_pt", "icu_collate_ro", "icu_collate_ru", "icu_collate_sa", "icu_collate_se", "icu_collate_si",
		"icu_collate_sk", "icu_collate_sl", "icu_collate_smn", "icu_collate_sq", "icu_collate_sr", "icu_collate_sr_ba",
		"icu_collate_sr_me", "icu_collate_sr_rs", "icu_collate_sv", "icu_collate_sw", "icu_collate_ta",
		"icu_collate_te", "icu_collate_th", "icu_collate_tk", "icu_collate_to", "icu_collate_tr", "icu_collate_ug",
		"icu_collate_uk", "icu_collate_ur", "icu_collate_uz", "icu_collate_vi", "icu_collate_wae", "icu_collate_wo",
		"icu_collate_xh", "icu_collate_yi", "icu_collate_yo", "icu_collate_yue", "icu_collate_yue_cn",
		"icu_collate_zh", "icu_collate_zh_cn", "icu_collate_zh_hk", "icu_collate_zh_mo", "icu_collate_zh_sg",
		"icu_collate_zh_tw", "icu_collate_zu"),
	allow("aggregate states (combine and finalize what export_state made)",
		"combine", "finalize"),
	allow("aggregate and window functions",
		"any_value", "approx_count_distinct", "approx_quantile", "approx_top_k", "arbitrary", "arg_max", "arg_max_null",
		"arg_max_nulls_last", "arg_min", "arg_min_null", "arg_min_nulls_last", "argmax", "argmin", "array_agg", "avg",
		"bit_and", "bit_or", "bit_xor", "bitstring_agg", "bool_and", "bool_or", "corr", "count", "count_if",
		"count_star", "countif", "covar_pop", "covar_samp", "cume_dist", "dense_rank", "entropy", "favg", "fill",
		"first", "first_value", "fsum", "geomean", "geometric_mean", "group_concat", "histogram", "histogram_exact",
		"kahan_sum", "kurtosis", "kurtosis_pop", "lag", "last", "last_value", "lead", "list",
		"listagg", "mad", "max", "max_by", "mean", "median", "min", "min_by", "mode", "nth_value", "ntile",
		"percent_rank", "product", "quantile", "quantile_cont", "quantile_disc", "rank", "rank_dense", "regr_avgx",
		"regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy",
		"reservoir_quantile", "row_number", "sem", "skewness", "stddev", "stddev_pop", "stddev_samp", "string_agg",
		"sum", "sum_no_overflow", "sumkahan", "var_pop", "var_samp", "variance", "wavg", "weighted_avg"),
	allow("binder built-ins (unnest in a SELECT list)", binderFunctions...),

	refuse(whyCatalog,
		"current_catalog", "current_connection_id", "current_database", "current_query", "current_query_id",
		"current_role", "current_schema", "current_schemas", "current_setting", "current_transaction_id",
		"current_user", "get_block_size", "getvariable", "in_search_path", "session_user", "txid_current", "user",
		"version"),
	refuse("looks a name up in DuckDB's catalog or log, or reports the engine's internals rather than values",
		"make_type", "parse_duckdb_log_message", "st_setcrs", "stats", "vector_type"),
	refuse(whyClock,
		"ago", "current_date", "current_localtime", "current_localtimestamp", "get_current_time",
		"get_current_timestamp", "now", "today", "transaction_timestamp"),
	refuse(whyRandom, "gen_random_uuid", "random", "setseed", "uuid", "uuidv4", "uuidv7"),
	refuse(whyState, "currval", "nextval", "sleep_ms", "write_log"),
	refuse(whySQL, "json_deserialize_sql", "json_serialize_plan", "json_serialize_sql"),
	refuse(whyPG,
		"col_description", "format_pg_type", "format_type", "has_any_column_privilege", "has_column_privilege",
		"has_database_privilege", "has_foreign_data_wrapper_privilege", "has_function_privilege",
		"has_language_privilege", "has_schema_privilege", "has_sequence_privilege", "has_server_privilege",
		"has_table_privilege", "has_tablespace_privilege", "inet_client_addr", "inet_client_port", "inet_server_addr",
		"inet_server_port", "map_to_pg_oid", "obj_description", "pg_collation_is_visible", "pg_conf_load_time",
		"pg_conversion_is_visible", "pg_function_is_visible", "pg_get_constraintdef", "pg_get_expr", "pg_get_viewdef",
		"pg_has_role", "pg_is_other_temp_schema", "pg_my_temp_schema", "pg_opclass_is_visible",
		"pg_operator_is_visible", "pg_opfamily_is_visible", "pg_postmaster_start_time", "pg_size_pretty", "pg_sleep",
		"pg_table_is_visible", "pg_ts_config_is_visible", "pg_ts_dict_is_visible", "pg_ts_parser_is_visible",
		"pg_ts_template_is_visible", "pg_type_is_visible", "pg_typeof", "shobj_description"),
	refuse(whyIntern,
		"__internal_compress_integral_ubigint", "__internal_compress_integral_uinteger",
		"__internal_compress_integral_usmallint", "__internal_compress_integral_utinyint",
		"__internal_compress_string_hugeint", "__internal_compress_string_ubigint", "__internal_compress_string_uhugeint",
		"__internal_compress_string_uinteger", "__internal_compress_string_usmallint",
		"__internal_compress_string_utinyint", "__internal_decompress_integral_bigint",
		"__internal_decompress_integral_hugeint", "__internal_decompress_integral_integer",
		"__internal_decompress_integral_smallint", "__internal_decompress_integral_ubigint",
		"__internal_decompress_integral_uhugeint", "__internal_decompress_integral_uinteger",
		"__internal_decompress_integral_usmallint", "__internal_decompress_string"),
)

var tableFunctions = classify(
	allow("row generators computed from their arguments", "generate_series", "range", "unnest"),

	refuse("reads files or URLs",
		"glob", "parquet_bloom_probe", "parquet_file_metadata", "parquet_full_metadata", "parquet_kv_metadata",
		"parquet_metadata", "parquet_scan", "parquet_schema", "read_blob", "read_csv", "read_csv_auto", "read_duckdb",
		"read_json", "read_json_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
		"read_ndjson_objects", "read_parquet", "read_text", "sniff_csv"),
	refuse("evaluates text as SQL or runs DuckDB's parser on it",
		"check_peg_parser", "json_execute_serialized_sql", "query", "query_table", "sql_auto_complete"),
	refuse("reads DuckDB's catalog, settings, secrets, logs or extensions",
		"duckdb_approx_database_count", "duckdb_columns", "duckdb_connection_count", "duckdb_constraints",
		"duckdb_coordinate_systems", "duckdb_databases", "duckdb_dependencies", "duckdb_extensions",
		"duckdb_external_file_cache", "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_log_contexts",
		"duckdb_logs", "duckdb_logs_parsed", "duckdb_memory", "duckdb_optimizers", "duckdb_prepared_statements",
		"duckdb_profiling_settings", "duckdb_schemas", "duckdb_secret_types", "duckdb_secrets", "duckdb_sequences",
		"duckdb_settings", "duckdb_table_sample", "duckdb_tables", "duckdb_temporary_files", "duckdb_types",
		"duckdb_variables", "duckdb_views", "icu_calendar_names", "pg_timezone_names", "pragma_collations",
		"pragma_database_size", "pragma_metadata_info", "pragma_platform", "pragma_show", "pragma_storage_info",
		"pragma_table_info", "pragma_user_agent", "pragma_version", "which_secret"),
	refuse("acts on the session (checkpoints, logging, profiling, the parser)",
		"checkpoint", "disable_logging", "disable_peg_parser", "disable_profiling", "enable_logging",
		"enable_peg_parser", "enable_profiling", "force_checkpoint", "truncate_duckdb_logs"),
	refuse("reads a table named by a string, out of the check's sight",
		"histogram", "histogram_values", "summary"),
	refuse("scans memory or storage directly; the engine's datasets are read by their names",
		"_cleanroom_scan", "arrow_scan", "arrow_scan_dumb", "seq_scan"),
	refuse("is a DuckDB test function", "test_all_types", "test_vector_types"),
	refuse("is a row generator the statement check has not reviewed, as no algorithm has needed it",
		"json_each", "json_tree", "repeat", "repeat_row"),
)
