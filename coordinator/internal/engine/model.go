package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"cleanroom.dev/cleanroom/contracts"
)

// Model is a contract's model with its WebAssembly module, ready to be
// added to a Session (docs/models.md).
type Model struct {
	Name     string // the SQL function name
	Provider string // the participant who provides it, named in errors
	Args     []contracts.ColumnType
	Result   contracts.ColumnType
	Module   []byte
}

// The exports of the model ABI, version 1 (docs/models.md).
const (
	exportABI        = "cleanroom_model_abi"
	exportAlloc      = "cleanroom_model_alloc"
	exportCall       = "cleanroom_model_call"
	exportMemory     = "memory"
	exportInitialize = "_initialize"
	modelABIVersion  = 1
)

// AllowedModelImports is the whole WASI surface a model may import, all
// from wasi_snapshot_preview1; any other import refuses the module. With
// no preopened directory, no socket, empty arguments and environment, a
// fake clock, a fixed random source and discarded output, none of them
// reaches the world outside the module or makes it depend on anything but
// its inputs (docs/models.md, "Sandbox").
var AllowedModelImports = []string{
	"args_get", "args_sizes_get", "environ_get", "environ_sizes_get",
	"clock_res_get", "clock_time_get", "random_get",
	"fd_write", "fd_close", "fd_fdstat_get", "fd_fdstat_set_flags", "fd_prestat_get", "fd_prestat_dir_name",
	"proc_exit", "sched_yield", "poll_oneoff",
}

// DefaultModelMemoryLimit is the linear memory one instance of a model
// may grow to when Config.ModelMemoryLimit is zero.
const DefaultModelMemoryLimit = 256 << 20

// maxModelString bounds one string a model returns.
const maxModelString = 1 << 20

// ErrModel is wrapped by every *ModelError.
var ErrModel = errors.New("model failed")

// ModelFailure is what went wrong with a model, in a fixed vocabulary.
type ModelFailure string

// The failures of a model.
const (
	FailureInvalid  ModelFailure = "invalid module" // does not compile, or breaks the ABI's imports and exports
	FailureTrap     ModelFailure = "trapped"        // a WebAssembly trap, or the module exited
	FailureMemory   ModelFailure = "exceeded its memory limit"
	FailureDeadline ModelFailure = "ran past the run's deadline"
	FailureStatus   ModelFailure = "returned an error status"
	FailureShape    ModelFailure = "returned a result of the wrong shape"
)

// ModelError reports a model that was refused or failed. Model and
// Failure may be shown to anyone; Detail is for the model's provider
// only: it describes the module's behaviour (a trap's kind, a status
// code), which the provider's code chooses and which could depend on the
// rows it read.
type ModelError struct {
	Model    string
	Provider string
	Failure  ModelFailure
	Detail   string
}

func (e *ModelError) Error() string {
	return fmt.Sprintf("model %s (from %s) %s: %s", e.Model, e.Provider, e.Failure, e.Detail)
}

// Unwrap makes errors.Is(err, ErrModel) hold.
func (e *ModelError) Unwrap() error { return ErrModel }

// Public returns the part of the error that may leave the VM: which model
// failed and how, without the detail.
func (e *ModelError) Public() string {
	return fmt.Sprintf("model %s (from %s) %s; the detail is given to %s only", e.Model, e.Provider, e.Failure, e.Provider)
}

// compileCache shares compiled modules between sessions: the same module
// is compiled to machine code once per process. It holds only modules
// that already passed CheckModule or a session's own check.
var compileCache = wazero.NewCompilationCache()

func newModelRuntime(ctx context.Context, memoryLimit int64) (wazero.Runtime, error) {
	pages := uint32(memoryLimit / 65536)
	if pages < 1 {
		pages = 1
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pages).
		WithCompilationCache(compileCache))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("engine: instantiating the models' WASI: %w", err)
	}
	return rt, nil
}

// checkModuleTimeout bounds the start of a module (its _initialize) in
// CheckModule.
var checkModuleTimeout = 10 * time.Second

// CheckModule compiles a model's module and checks it against the ABI: its
// imports (only AllowedModelImports), its exports (memory,
// cleanroom_model_abi, cleanroom_model_alloc and cleanroom_model_call with
// their signatures; no _start) and its ABI version. It runs nothing of the
// module but cleanroom_model_abi, in a fresh instance with no memory to
// spare. A refusal is a *ModelError with Failure FailureInvalid.
func CheckModule(ctx context.Context, m Model) error {
	rt, err := newModelRuntime(ctx, DefaultModelMemoryLimit)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	compiled, err := compileModel(ctx, rt, m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkModuleTimeout)
	defer cancel()
	inst, err := instantiate(ctx, rt, compiled, m)
	if err != nil {
		return err
	}
	return inst.mod.Close(ctx)
}

func invalid(m Model, format string, args ...any) error {
	return &ModelError{Model: m.Name, Provider: m.Provider, Failure: FailureInvalid, Detail: fmt.Sprintf(format, args...)}
}

func compileModel(ctx context.Context, rt wazero.Runtime, m Model) (wazero.CompiledModule, error) {
	compiled, err := rt.CompileModule(ctx, m.Module)
	if err != nil {
		return nil, invalid(m, "it is not a WebAssembly module this runtime can compile: %v", err)
	}
	if err := checkSurface(compiled, m); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	return compiled, nil
}

func checkSurface(c wazero.CompiledModule, m Model) error {
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasi_snapshot_preview1.ModuleName || !slices.Contains(AllowedModelImports, name) {
			return invalid(m, "it imports %s.%s, which is outside the models' allowed surface (%s from %s)",
				mod, name, strings.Join(AllowedModelImports, ", "), wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, mem := range c.ImportedMemories() {
		mod, name, _ := mem.Import()
		return invalid(m, "it imports the memory %s.%s; a model must define and export its own memory", mod, name)
	}
	if len(c.ExportedMemories()) != 1 || c.ExportedMemories()[exportMemory] == nil {
		return invalid(m, "it must export exactly one memory, named %q", exportMemory)
	}
	i32 := api.ValueTypeI32
	want := map[string][2][]api.ValueType{
		exportABI:   {nil, {i32}},
		exportAlloc: {{i32}, {i32}},
		exportCall:  {{i32, i32}, {i32}},
	}
	fns := c.ExportedFunctions()
	for name, sig := range want {
		f := fns[name]
		if f == nil {
			return invalid(m, "it does not export the function %s (docs/models.md lists the ABI's exports)", name)
		}
		if !slices.Equal(f.ParamTypes(), sig[0]) || !slices.Equal(f.ResultTypes(), sig[1]) {
			return invalid(m, "its export %s has the signature %s; the ABI wants %s", name, signature(f.ParamTypes(), f.ResultTypes()), signature(sig[0], sig[1]))
		}
	}
	if _, ok := fns["_start"]; ok {
		return invalid(m, "it exports _start, so it is a WASI command; a model is a reactor (Go: go build -buildmode=c-shared)")
	}
	if f, ok := fns[exportInitialize]; ok && (len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0) {
		return invalid(m, "its export %s must take and return nothing", exportInitialize)
	}
	return nil
}

func signature(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}

// instance is one instantiation of a model: its own memory and call
// buffer. It serves one DuckDB thread at a time.
type instance struct {
	mod         api.Module
	alloc, call api.Function
	buf, cap    uint32 // the call buffer's address and size
}

func instantiate(ctx context.Context, rt wazero.Runtime, c wazero.CompiledModule, m Model) (*instance, error) {
	starts := []string{}
	if _, ok := c.ExportedFunctions()[exportInitialize]; ok {
		starts = append(starts, exportInitialize)
	}
	// No file system, no arguments, no environment, output discarded; the
	// clocks and the random source are wazero's deterministic defaults.
	mod, err := rt.InstantiateModule(ctx, c, wazero.NewModuleConfig().WithName("").WithStartFunctions(starts...))
	if err != nil {
		return nil, failure(ctx, m, "while starting", err)
	}
	inst := &instance{mod: mod, alloc: mod.ExportedFunction(exportAlloc), call: mod.ExportedFunction(exportCall)}
	res, err := mod.ExportedFunction(exportABI).Call(ctx)
	if err != nil {
		mod.Close(ctx)
		return nil, failure(ctx, m, "in "+exportABI, err)
	}
	if v := uint32(res[0]); v != modelABIVersion {
		mod.Close(ctx)
		return nil, invalid(m, "it implements model ABI version %d; this coordinator runs version %d", v, modelABIVersion)
	}
	return inst, nil
}

// failure classifies an error of a call into a module.
func failure(ctx context.Context, m Model, during string, err error) error {
	e := &ModelError{Model: m.Name, Provider: m.Provider, Failure: FailureTrap, Detail: during + ": " + err.Error()}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled):
		e.Failure, e.Detail = FailureDeadline, during+": the run's context ended"
	case ctx.Err() != nil:
		e.Failure, e.Detail = FailureDeadline, during+": the run's context ended"
	case errors.As(err, &exit):
		e.Detail = fmt.Sprintf("%s: the module exited with code %d", during, exit.ExitCode())
	case strings.Contains(err.Error(), "out of memory"):
		e.Failure = FailureMemory
	}
	return e
}

// udf is one model registered in a session: a pool of instances, at most
// one per DuckDB thread, created on demand.
type udf struct {
	m        Model
	s        *Session
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	limit    int64

	mu   sync.Mutex
	idle []*instance
	all  []*instance
}

// duckType is the DuckDB type of a contract column type a model takes or
// returns, as the dataset scan maps it.
func duckType(t contracts.ColumnType) (duckdb.TypeInfo, error) {
	var id duckdb.Type
	switch t.Kind {
	case contracts.KindBool:
		id = duckdb.TYPE_BOOLEAN
	case contracts.KindInt32:
		id = duckdb.TYPE_INTEGER
	case contracts.KindInt64:
		id = duckdb.TYPE_BIGINT
	case contracts.KindFloat64:
		id = duckdb.TYPE_DOUBLE
	case contracts.KindString:
		id = duckdb.TYPE_VARCHAR
	case contracts.KindDate:
		id = duckdb.TYPE_DATE
	case contracts.KindTimestamp:
		id = duckdb.TYPE_TIMESTAMP_TZ
	default:
		return nil, fmt.Errorf("a model cannot take or return %s", t)
	}
	return duckdb.NewTypeInfo(id)
}

// width is the encoded size of one value of kind t in a frame.
func width(t contracts.ColumnType) int {
	switch t.Kind {
	case contracts.KindBool:
		return 1
	case contracts.KindInt32, contracts.KindDate:
		return 4
	}
	return 8 // int64, float64, timestamp, and a string's (address, length)
}

func (u *udf) Config() duckdb.ScalarFuncConfig {
	args := make([]duckdb.TypeInfo, len(u.m.Args))
	for i, t := range u.m.Args {
		args[i], _ = duckType(t) // checked by AddModels
	}
	res, _ := duckType(u.m.Result)
	// Not volatile: a model is a function of its arguments, which lets
	// DuckDB fold it over constants. Special NULL handling: the executor
	// gives NULL for any row with a NULL argument itself, so rows line up
	// with the input chunk.
	return duckdb.ScalarFuncConfig{InputTypeInfos: args, ResultTypeInfo: res, SpecialNullHandling: true}
}

func (u *udf) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{ChunkContextExecutor: u.execute}
}

// get returns an idle instance, or a new one.
func (u *udf) get(ctx context.Context) (*instance, error) {
	u.mu.Lock()
	if n := len(u.idle); n > 0 {
		inst := u.idle[n-1]
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		return inst, nil
	}
	u.mu.Unlock()
	inst, err := instantiate(ctx, u.rt, u.compiled, u.m)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.all = append(u.all, inst)
	u.mu.Unlock()
	return inst, nil
}

func (u *udf) put(inst *instance) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.idle = append(u.idle, inst)
}

// execute scores one chunk: it copies the argument vectors into the
// module's call buffer, calls cleanroom_model_call once, and copies the
// results out. Any failure is recorded in the session as a *ModelError
// and fails the query.
func (u *udf) execute(_ context.Context, st *duckdb.ChunkIteratorState) (err error) {
	ctx := u.s.runContext()
	if err := ctx.Err(); err != nil {
		return u.s.modelFailed(failure(ctx, u.m, "before a call", err))
	}
	inst, err := u.get(ctx)
	if err != nil {
		return u.s.modelFailed(err)
	}
	if err := u.score(ctx, inst, st); err != nil {
		if me := (*ModelError)(nil); errors.As(err, &me) && me.Failure == FailureTrap && u.nearLimit(inst) {
			me.Failure = FailureMemory
		}
		inst.mod.Close(ctx)
		return u.s.modelFailed(err)
	}
	u.put(inst)
	return nil
}

// nearLimit reports whether the instance's memory is within a tenth of the
// limit: a trap there is the module running out of memory.
func (u *udf) nearLimit(inst *instance) bool {
	mem := inst.mod.Memory()
	return mem != nil && int64(mem.Size()) >= u.limit-u.limit/10
}

// layout places a frame of rows rows in the call buffer: the column
// descriptors, then each column's validity bytes and values, 8-aligned,
// then the bytes of the string arguments. It returns each column's
// (validity, data) offsets from the frame's start and the total size.
func (u *udf) layout(rows int, stringBytes int) (offs [][2]uint32, size uint32) {
	align := func(n int) int { return (n + 7) &^ 7 }
	cols := len(u.m.Args) + 1
	at := align(8 * cols)
	offs = make([][2]uint32, cols)
	for i := range cols {
		t := u.m.Result
		if i < len(u.m.Args) {
			t = u.m.Args[i]
		}
		offs[i][0] = uint32(at)
		at += align(rows)
		offs[i][1] = uint32(at)
		at += align(rows * width(t))
	}
	return offs, uint32(at + stringBytes)
}

func (u *udf) score(ctx context.Context, inst *instance, st *duckdb.ChunkIteratorState) error {
	in := st.GetInputChunk()
	rows := in.GetSize()
	nargs := len(u.m.Args)
	// Read the arguments once: values, and strings borrowed from DuckDB's
	// vectors (valid during this call; copied into the frame below).
	vals := make([][]any, nargs)
	strs := make([][]string, nargs)
	stringBytes := 0
	for c := range nargs {
		vals[c] = make([]any, rows)
		if u.m.Args[c].Kind == contracts.KindString {
			vec, err := in.GetVector(c)
			if err != nil {
				return fmt.Errorf("engine: reading argument %d of model %s: %w", c+1, u.m.Name, err)
			}
			view, err := duckdb.GetVectorView[string](vec)
			if err != nil {
				return fmt.Errorf("engine: reading argument %d of model %s: %w", c+1, u.m.Name, err)
			}
			strs[c] = make([]string, rows)
			for r := range rows {
				v, ok, err := view.GetValueBorrowed(r)
				if err != nil {
					return fmt.Errorf("engine: reading argument %d of model %s: %w", c+1, u.m.Name, err)
				}
				if ok {
					vals[c][r], strs[c][r] = present, v
					stringBytes += len(v)
				}
			}
			continue
		}
		for r := range rows {
			v, err := in.GetValue(c, r)
			if err != nil {
				return fmt.Errorf("engine: reading argument %d of model %s: %w", c+1, u.m.Name, err)
			}
			vals[c][r] = v
		}
	}
	offs, size := u.layout(rows, stringBytes)
	if size > inst.cap {
		res, err := inst.alloc.Call(ctx, uint64(size))
		if err != nil {
			return failure(ctx, u.m, "in "+exportAlloc, err)
		}
		inst.buf, inst.cap = uint32(res[0]), size
		if inst.buf == 0 || inst.buf%8 != 0 {
			return &ModelError{Model: u.m.Name, Provider: u.m.Provider, Failure: FailureShape,
				Detail: fmt.Sprintf("%s(%d) returned address %d; the ABI wants a non-zero multiple of 8", exportAlloc, size, inst.buf)}
		}
	}
	mem := inst.mod.Memory()
	frame, ok := mem.Read(inst.buf, size)
	if !ok {
		return &ModelError{Model: u.m.Name, Provider: u.m.Provider, Failure: FailureShape,
			Detail: fmt.Sprintf("%s returned a buffer of %d bytes at %d, outside its memory of %d bytes", exportAlloc, size, inst.buf, mem.Size())}
	}
	clear(frame)
	le := binary.LittleEndian
	strAt := size - uint32(stringBytes)
	for c := range nargs + 1 {
		le.PutUint32(frame[8*c:], inst.buf+offs[c][0])
		le.PutUint32(frame[8*c+4:], inst.buf+offs[c][1])
	}
	for c := range nargs {
		valid, data := frame[offs[c][0]:], frame[offs[c][1]:]
		for r, v := range vals[c] {
			if v == nil {
				continue
			}
			valid[r] = 1
			switch x := v.(type) {
			case bool:
				if x {
					data[r] = 1
				}
			case int32:
				le.PutUint32(data[4*r:], uint32(x))
			case int64:
				le.PutUint64(data[8*r:], uint64(x))
			case float64:
				le.PutUint64(data[8*r:], math.Float64bits(x))
			case stringMarker:
				str := strs[c][r]
				copy(frame[strAt:], str)
				le.PutUint32(data[8*r:], inst.buf+strAt)
				le.PutUint32(data[8*r+4:], uint32(len(str)))
				strAt += uint32(len(str))
			case time.Time:
				if u.m.Args[c].Kind == contracts.KindDate {
					le.PutUint32(data[4*r:], uint32(int32(x.Unix()/86400)))
				} else {
					le.PutUint64(data[8*r:], uint64(x.UnixMicro()))
				}
			default:
				return fmt.Errorf("engine: argument %d of model %s is a %T", c+1, u.m.Name, v)
			}
		}
	}
	res, err := inst.call.Call(ctx, uint64(rows), uint64(inst.buf))
	if err != nil {
		return failure(ctx, u.m, "in "+exportCall, err)
	}
	if code := int32(res[0]); code != 0 {
		return &ModelError{Model: u.m.Name, Provider: u.m.Provider, Failure: FailureStatus, Detail: fmt.Sprintf("%s returned status %d", exportCall, code)}
	}
	// The call may have grown the memory: read the frame again.
	if frame, ok = mem.Read(inst.buf, size); !ok {
		return &ModelError{Model: u.m.Name, Provider: u.m.Provider, Failure: FailureShape, Detail: "the call buffer is no longer inside the module's memory"}
	}
	out, err := u.results(mem, frame[offs[nargs][0]:], frame[offs[nargs][1]:], vals, rows)
	if err != nil {
		return err
	}
	if u.m.Result.Kind == contracts.KindString {
		// Strings go straight from the module's memory into DuckDB, which
		// copies them.
		w, err := duckdb.GetVectorWriter[string](st.GetResultVector())
		if err != nil {
			return fmt.Errorf("engine: writing the result of model %s: %w", u.m.Name, err)
		}
		for r, v := range out {
			if v == nil {
				err = w.SetNull(r)
			} else {
				b := v.([]byte)
				err = w.Set(r, unsafe.String(unsafe.SliceData(b), len(b)))
			}
			if err != nil {
				return fmt.Errorf("engine: writing the result of model %s: %w", u.m.Name, err)
			}
		}
		return nil
	}
	r := 0
	for row, err := range st.Rows() {
		if err != nil {
			return fmt.Errorf("engine: reading the rows of model %s: %w", u.m.Name, err)
		}
		if err := row.SetResult(out[r]); err != nil {
			return fmt.Errorf("engine: writing the result of model %s: %w", u.m.Name, err)
		}
		r++
	}
	return nil
}

// stringMarker marks a present string argument in vals; its value is in
// strs.
type stringMarker struct{}

var present any = stringMarker{}

// results decodes and checks the result column. A row with a NULL
// argument is NULL whatever the module wrote.
func (u *udf) results(mem api.Memory, valid, data []byte, vals [][]any, rows int) ([]any, error) {
	le := binary.LittleEndian
	out := make([]any, rows)
	shape := func(r int, format string, args ...any) error {
		return &ModelError{Model: u.m.Name, Provider: u.m.Provider, Failure: FailureShape,
			Detail: fmt.Sprintf("row %d of the chunk: ", r) + fmt.Sprintf(format, args...)}
	}
rows:
	for r := range rows {
		switch valid[r] {
		case 0:
			continue
		case 1:
		default:
			return nil, shape(r, "validity byte %d; the ABI wants 0 or 1", valid[r])
		}
		for c := range vals {
			if vals[c][r] == nil {
				continue rows
			}
		}
		switch u.m.Result.Kind {
		case contracts.KindBool:
			switch data[r] {
			case 0, 1:
				out[r] = data[r] == 1
			default:
				return nil, shape(r, "bool byte %d; the ABI wants 0 or 1", data[r])
			}
		case contracts.KindInt32:
			out[r] = int32(le.Uint32(data[4*r:]))
		case contracts.KindDate:
			out[r] = time.Unix(int64(int32(le.Uint32(data[4*r:])))*86400, 0).UTC()
		case contracts.KindInt64:
			out[r] = int64(le.Uint64(data[8*r:]))
		case contracts.KindTimestamp:
			out[r] = time.UnixMicro(int64(le.Uint64(data[8*r:]))).UTC()
		case contracts.KindFloat64:
			out[r] = math.Float64frombits(le.Uint64(data[8*r:]))
		case contracts.KindString:
			addr, n := le.Uint32(data[8*r:]), le.Uint32(data[8*r+4:])
			if n > maxModelString {
				return nil, shape(r, "a string of %d bytes; at most %d are accepted", n, maxModelString)
			}
			b, ok := mem.Read(addr, n)
			if !ok {
				return nil, shape(r, "a string of %d bytes at %d, outside the module's memory", n, addr)
			}
			if !utf8.Valid(b) {
				return nil, shape(r, "a string that is not valid UTF-8")
			}
			out[r] = b // a view of the module's memory, valid until the next call
		}
	}
	return out, nil
}

// close releases every instance and the runtime.
func (u *udf) close(ctx context.Context) {
	if u.rt != nil {
		u.rt.Close(ctx)
	}
}

// AddModels compiles each model, checks it against the ABI and registers
// it as a scalar function of this session's DuckDB, under its name: the
// only way a module runs. Call it after New (the database is locked down)
// and before Run. A model whose name DuckDB already knows as a function
// is refused. Errors about a module are *ModelError.
func (s *Session) AddModels(ctx context.Context, models []Model) error {
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	db := sql.OpenDB(unclosable{s.connector})
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("engine: connecting: %w", err)
	}
	defer conn.Close()
	limit := s.cfg.ModelMemoryLimit
	for _, m := range models {
		for _, t := range append(slices.Clone(m.Args), m.Result) {
			if _, err := duckType(t); err != nil {
				return invalid(m, "%v", err)
			}
		}
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_functions() WHERE function_name = lower($1)", m.Name).Scan(&n); err != nil {
			return fmt.Errorf("engine: looking up function %s: %w", m.Name, err)
		}
		if n > 0 {
			return refuse(LayerStatement, nil, "model name %s is already a function of DuckDB (or another model); the contract must give the model another name", m.Name)
		}
		rt, err := newModelRuntime(ctx, limit)
		if err != nil {
			return err
		}
		compiled, err := compileModel(ctx, rt, m)
		if err != nil {
			rt.Close(ctx)
			return err
		}
		u := &udf{m: m, s: s, rt: rt, compiled: compiled, limit: limit}
		// A first instance checks the ABI version now, not in the query.
		inst, err := instantiate(ctx, rt, compiled, m)
		if err != nil {
			rt.Close(ctx)
			return err
		}
		u.all, u.idle = []*instance{inst}, []*instance{inst}
		s.mu.Lock()
		s.models = append(s.models, u)
		s.mu.Unlock()
		if err := duckdb.RegisterScalarUDF(conn, m.Name, u); err != nil {
			return fmt.Errorf("engine: registering model %s: %w", m.Name, err)
		}
	}
	return nil
}

// unclosable hides a connector's Close from database/sql, whose DB.Close
// would otherwise close the session's database.
type unclosable struct{ driver.Connector }

// modelNames returns the names of the models AddModels registered.
func (s *Session) modelNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, len(s.models))
	for i, u := range s.models {
		names[i] = u.m.Name
	}
	return names
}

// runContext is the context of the session's Run: models run under it.
func (s *Session) runContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil {
		return context.Background()
	}
	return s.runCtx
}

// modelFailed records the first model failure of the run and returns err.
func (s *Session) modelFailed(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var me *ModelError
	if s.modelErr == nil && errors.As(err, &me) {
		s.modelErr = me
	}
	return err
}

func (s *Session) firstModelError() *ModelError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modelErr
}
