package connectors

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"cleanroom.dev/cleanroom/contracts"
)

// Profile describes a dataset's rows as a provider checks them before
// anything is permanent (cleanroom dataset check, and the summary of
// dataset upload): per column, how many values are empty, how many are
// distinct, and the smallest and largest. It is computed on the provider's
// machine and never leaves it.
type Profile struct {
	Rows    int64           `json:"rows"`
	Columns []ColumnProfile `json:"columns"`
}

// ColumnProfile is one column of a Profile.
type ColumnProfile struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// NotNull is the contract's nullable: false.
	NotNull bool  `json:"not_null"`
	Nulls   int64 `json:"nulls"`
	// Distinct counts the distinct non-null values: exactly up to
	// ExactDistinctLimit of them, and beyond that estimated (HyperLogLog,
	// 2^14 registers: a standard error of about 0.8%), DistinctApprox set.
	Distinct       int64 `json:"distinct"`
	DistinctApprox bool  `json:"distinct_approx"`
	// Min and Max are the smallest and largest non-null values, as the
	// input would write them (strings truncated to 40 characters); empty
	// when every value is null. Floating-point NaN is left out of both.
	Min string `json:"min,omitempty"`
	Max string `json:"max,omitempty"`
}

// ExactDistinctLimit is how many distinct values of a column a Profile
// counts exactly.
const ExactDistinctLimit = 4096

// Profiler computes a Profile of the batches it is shown, in bounded memory
// whatever the number of rows: about 50 KB per column.
type Profiler struct {
	cols []contracts.Column
	rows int64
	acc  []*columnAcc
}

// NewProfiler returns a Profiler for batches of cols (the dataset's
// columns, as a connectors Reader gives them).
func NewProfiler(cols []contracts.Column) *Profiler {
	p := &Profiler{cols: cols, acc: make([]*columnAcc, len(cols))}
	seed := maphash.MakeSeed()
	for i := range cols {
		p.acc[i] = &columnAcc{seed: seed, seedBits: maphash.Bytes(seed, nil), exact: map[uint64]struct{}{}}
	}
	return p
}

// Add adds a batch's rows. The batch must have the columns' schema.
func (p *Profiler) Add(rec arrow.RecordBatch) {
	p.rows += rec.NumRows()
	for i := range p.cols {
		if i < int(rec.NumCols()) {
			p.acc[i].add(rec.Column(i))
		}
	}
}

// Profile returns what the batches added so far show.
func (p *Profiler) Profile() *Profile {
	out := &Profile{Rows: p.rows, Columns: make([]ColumnProfile, len(p.cols))}
	for i, col := range p.cols {
		a := p.acc[i]
		cp := ColumnProfile{Name: col.Name, Type: col.Type.String(), NotNull: col.NotNull, Nulls: a.nulls}
		if a.overflow {
			cp.Distinct, cp.DistinctApprox = a.hll.estimate(), true
		} else {
			cp.Distinct = int64(len(a.exact))
		}
		if a.has {
			cp.Min, cp.Max = a.render(a.min, col.Type), a.render(a.max, col.Type)
		}
		out.Columns[i] = cp
	}
	return out
}

// Observe returns a reader that yields rr's batches unchanged and adds each
// to the Profiler, on a goroutine of its own so that profiling overlaps
// whatever consumes the batches (at most two batches are held for it).
// Call Wait once the reader is drained, before Profile.
func (p *Profiler) Observe(rr array.RecordReader) *ObservedReader {
	o := &ObservedReader{RecordReader: rr, ch: make(chan arrow.RecordBatch, 2)}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for rec := range o.ch {
			p.Add(rec)
			rec.Release()
		}
	}()
	return o
}

// ObservedReader is a RecordReader whose batches a Profiler sees.
type ObservedReader struct {
	array.RecordReader
	ch     chan arrow.RecordBatch
	wg     sync.WaitGroup
	closed bool
}

// Next advances the underlying reader and hands the batch to the Profiler.
func (o *ObservedReader) Next() bool {
	if o.closed {
		return false
	}
	if !o.RecordReader.Next() {
		o.Wait()
		return false
	}
	rec := o.RecordReader.RecordBatch()
	rec.Retain()
	o.ch <- rec
	return true
}

// Wait waits until the Profiler has seen every batch delivered so far; the
// reader delivers nothing more afterwards.
func (o *ObservedReader) Wait() {
	if !o.closed {
		o.closed = true
		close(o.ch)
	}
	o.wg.Wait()
}

// columnAcc accumulates one column.
type columnAcc struct {
	seed     maphash.Seed
	seedBits uint64 // mixed into the hashes of numbers, which skip maphash for speed
	nulls    int64
	exact    map[uint64]struct{}
	overflow bool
	hll      hyperLogLog
	has      bool
	min, max value
}

// value is one column value, of the column's kind.
type value struct {
	i int64
	f float64
	s string
	d decimal128.Num
}

func (a *columnAcc) see(h uint64) {
	a.hll.add(h)
	if !a.overflow {
		a.exact[h] = struct{}{}
		if len(a.exact) > ExactDistinctLimit {
			a.overflow, a.exact = true, nil
		}
	}
}

func (a *columnAcc) add(arr arrow.Array) {
	a.nulls += int64(arr.NullN())
	valid := func(j int) bool { return arr.NullN() == 0 || arr.IsValid(j) }
	switch c := arr.(type) {
	case *array.Boolean:
		for j := 0; j < c.Len(); j++ {
			if valid(j) {
				v := int64(0)
				if c.Value(j) {
					v = 1
				}
				a.seeInt(v)
			}
		}
	case *array.Int32:
		for j, v := range c.Int32Values() {
			if valid(j) {
				a.seeInt(int64(v))
			}
		}
	case *array.Int64:
		for j, v := range c.Int64Values() {
			if valid(j) {
				a.seeInt(v)
			}
		}
	case *array.Date32:
		for j, v := range c.Date32Values() {
			if valid(j) {
				a.seeInt(int64(v))
			}
		}
	case *array.Timestamp:
		for j, v := range c.TimestampValues() {
			if valid(j) {
				a.seeInt(int64(v))
			}
		}
	case *array.Float64:
		for j, v := range c.Float64Values() {
			if !valid(j) {
				continue
			}
			if v == 0 {
				v = 0 // -0 and +0 are one value
			}
			a.see(mix(math.Float64bits(v) ^ a.seedBits))
			if math.IsNaN(v) {
				continue
			}
			if !a.has || v < a.min.f {
				a.min.f = v
			}
			if !a.has || v > a.max.f {
				a.max.f = v
			}
			a.has = true
		}
	case *array.String:
		for j := 0; j < c.Len(); j++ {
			if !valid(j) {
				continue
			}
			s := c.Value(j)
			a.see(maphash.String(a.seed, s))
			// s aliases the batch, whose buffers are reused once it is
			// released: keep a copy.
			if !a.has || s < a.min.s {
				a.min.s = strings.Clone(clampString(s))
			}
			if !a.has || s > a.max.s {
				a.max.s = strings.Clone(clampString(s))
			}
			a.has = true
		}
	case *array.Decimal128:
		for j := 0; j < c.Len(); j++ {
			if !valid(j) {
				continue
			}
			n := c.Value(j)
			hi, lo := uint64(n.HighBits()), n.LowBits()
			var b [16]byte
			binary.LittleEndian.PutUint64(b[:8], lo)
			binary.LittleEndian.PutUint64(b[8:], hi)
			a.see(maphash.Bytes(a.seed, b[:]))
			if !a.has || n.Less(a.min.d) {
				a.min.d = n
			}
			if !a.has || a.max.d.Less(n) {
				a.max.d = n
			}
			a.has = true
		}
	}
}

func (a *columnAcc) seeInt(v int64) {
	a.see(mix(uint64(v) ^ a.seedBits))
	if !a.has || v < a.min.i {
		a.min.i = v
	}
	if !a.has || v > a.max.i {
		a.max.i = v
	}
	a.has = true
}

// render writes a value as the input formats write it.
func (a *columnAcc) render(v value, t contracts.ColumnType) string {
	switch t.Kind {
	case contracts.KindBool:
		return strconv.FormatBool(v.i == 1)
	case contracts.KindInt32, contracts.KindInt64:
		return strconv.FormatInt(v.i, 10)
	case contracts.KindFloat64:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case contracts.KindString:
		return strconv.Quote(v.s)
	case contracts.KindDate:
		return time.Unix(v.i*86400, 0).UTC().Format(time.DateOnly)
	case contracts.KindTimestamp:
		return time.UnixMicro(v.i).UTC().Format("2006-01-02T15:04:05.999999Z")
	case contracts.KindDecimal:
		return v.d.ToString(t.Scale)
	}
	return fmt.Sprint(v)
}

// clampString keeps at most 40 characters of s (whole runes).
func clampString(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// mix is a 64-bit finaliser (MurmurHash3's fmix64): equal inputs give equal
// outputs, and every input bit affects every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hyperLogLog estimates the number of distinct hashes added (Flajolet et
// al., 2007), with 2^14 one-byte registers and linear counting for small
// numbers.
type hyperLogLog struct {
	reg []uint8
}

const hllP = 14

func (h *hyperLogLog) add(x uint64) {
	if h.reg == nil {
		h.reg = make([]uint8, 1<<hllP)
	}
	idx := x >> (64 - hllP)
	rho := uint8(bits.LeadingZeros64(x<<hllP|1<<(hllP-1)) + 1)
	if rho > h.reg[idx] {
		h.reg[idx] = rho
	}
}

func (h *hyperLogLog) estimate() int64 {
	if h.reg == nil {
		return 0
	}
	m := float64(len(h.reg))
	sum, zeros := 0.0, 0
	for _, r := range h.reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return int64(math.Round(e))
}
