package contracts

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// TypeKind is the kind of a column type.
type TypeKind int

// Column type kinds, as named in contracts.
const (
	KindBool TypeKind = iota + 1
	KindInt32
	KindInt64
	KindFloat64
	KindString
	KindDate
	KindTimestamp
	KindDecimal
)

// Maximum decimal precision: decimal(p,s) maps to Arrow decimal128, which
// holds 38 digits.
const MaxDecimalPrecision = 38

var kindNames = map[TypeKind]string{
	KindBool: "bool", KindInt32: "int32", KindInt64: "int64", KindFloat64: "float64",
	KindString: "string", KindDate: "date", KindTimestamp: "timestamp",
}

// ColumnType is a column's type. Each maps to exactly one Arrow type:
//
//	bool       arrow.bool
//	int32      arrow.int32
//	int64      arrow.int64
//	float64    arrow.float64
//	string     arrow.utf8
//	date       arrow.date32 (days since 1970-01-01)
//	timestamp  arrow.timestamp[us, UTC]
//	decimal(p,s) arrow.decimal128(p, s), 1 ≤ p ≤ 38, 0 ≤ s ≤ p
type ColumnType struct {
	Kind      TypeKind
	Precision int32 // decimal only
	Scale     int32 // decimal only
}

var decimalPattern = regexp.MustCompile(`^decimal\(\s*([0-9]{1,3})\s*,\s*([0-9]{1,3})\s*\)$`)

// ParseColumnType parses a type name as written in a contract.
func ParseColumnType(s string) (ColumnType, error) {
	for k, name := range kindNames {
		if s == name {
			return ColumnType{Kind: k}, nil
		}
	}
	if m := decimalPattern.FindStringSubmatch(s); m != nil {
		p, _ := strconv.Atoi(m[1])
		sc, _ := strconv.Atoi(m[2])
		if p < 1 || p > MaxDecimalPrecision {
			return ColumnType{}, fmt.Errorf("decimal precision %d is outside 1..%d", p, MaxDecimalPrecision)
		}
		if sc > p {
			return ColumnType{}, fmt.Errorf("decimal scale %d exceeds precision %d", sc, p)
		}
		return ColumnType{Kind: KindDecimal, Precision: int32(p), Scale: int32(sc)}, nil
	}
	return ColumnType{}, fmt.Errorf("unknown type %q (want bool, int32, int64, float64, string, date, timestamp or decimal(p,s))", s)
}

// String returns the canonical name: "decimal(p,s)" without spaces for
// decimals.
func (t ColumnType) String() string {
	if t.Kind == KindDecimal {
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	}
	return kindNames[t.Kind]
}

// SQLType returns the DuckDB SQL type a column of t is loaded as: the
// type DuckDB gives the Arrow type t maps to (ArrowType).
func (t ColumnType) SQLType() string {
	switch t.Kind {
	case KindBool:
		return "BOOLEAN"
	case KindInt32:
		return "INTEGER"
	case KindInt64:
		return "BIGINT"
	case KindFloat64:
		return "DOUBLE"
	case KindString:
		return "VARCHAR"
	case KindDate:
		return "DATE"
	case KindTimestamp:
		return "TIMESTAMPTZ"
	case KindDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	}
	panic(fmt.Sprintf("contracts: invalid column type kind %d", t.Kind))
}

// ArrowType returns the Arrow type the column maps to.
func (t ColumnType) ArrowType() arrow.DataType {
	switch t.Kind {
	case KindBool:
		return arrow.FixedWidthTypes.Boolean
	case KindInt32:
		return arrow.PrimitiveTypes.Int32
	case KindInt64:
		return arrow.PrimitiveTypes.Int64
	case KindFloat64:
		return arrow.PrimitiveTypes.Float64
	case KindString:
		return arrow.BinaryTypes.String
	case KindDate:
		return arrow.FixedWidthTypes.Date32
	case KindTimestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case KindDecimal:
		return &arrow.Decimal128Type{Precision: t.Precision, Scale: t.Scale}
	}
	panic(fmt.Sprintf("contracts: invalid column type kind %d", t.Kind))
}
