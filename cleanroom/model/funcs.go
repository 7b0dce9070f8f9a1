package model

// The FuncN functions register the module's one function. A call reads
// fixed-width argument columns in place, decodes string columns, calls
// the function once per row whose arguments are all present (the others
// get NULL), and writes fixed-width results in place: one loop over the
// rows, so the per-row work is the function's own.

// Func1 registers fn as the module's function of one argument. Call it
// once, from init.
func Func1[A, R Value](fn func(A) R) {
	var aBuf []A
	var rBuf []R
	register(fn, []int{width[A](), width[R]()}, func(f *frame) int32 {
		a, ok0 := args(f, &f.cols[0], &aBuf)
		if !ok0 {
			return codeBadFrame
		}
		res := &f.cols[1]
		r := results(f, res, &rBuf)
		for i := range f.rows {
			if f.cols[0].valid[i] == 0 {
				res.valid[i] = 0
				continue
			}
			r[i] = fn(a[i])
			res.valid[i] = 1
		}
		finish(f, res, r)
		return codeOK
	})
}

// Func2 registers fn as the module's function of two arguments. Call it
// once, from init.
func Func2[A, B, R Value](fn func(A, B) R) {
	var aBuf []A
	var bBuf []B
	var rBuf []R
	register(fn, []int{width[A](), width[B](), width[R]()}, func(f *frame) int32 {
		a, ok0 := args(f, &f.cols[0], &aBuf)
		b, ok1 := args(f, &f.cols[1], &bBuf)
		if !ok0 || !ok1 {
			return codeBadFrame
		}
		res := &f.cols[2]
		r := results(f, res, &rBuf)
		for i := range f.rows {
			if f.cols[0].valid[i]&f.cols[1].valid[i] == 0 {
				res.valid[i] = 0
				continue
			}
			r[i] = fn(a[i], b[i])
			res.valid[i] = 1
		}
		finish(f, res, r)
		return codeOK
	})
}

// Func3 registers fn as the module's function of three arguments. Call it
// once, from init.
func Func3[A, B, C, R Value](fn func(A, B, C) R) {
	var aBuf []A
	var bBuf []B
	var cBuf []C
	var rBuf []R
	register(fn, []int{width[A](), width[B](), width[C](), width[R]()}, func(f *frame) int32 {
		a, ok0 := args(f, &f.cols[0], &aBuf)
		b, ok1 := args(f, &f.cols[1], &bBuf)
		c, ok2 := args(f, &f.cols[2], &cBuf)
		if !ok0 || !ok1 || !ok2 {
			return codeBadFrame
		}
		res := &f.cols[3]
		r := results(f, res, &rBuf)
		for i := range f.rows {
			if f.cols[0].valid[i]&f.cols[1].valid[i]&f.cols[2].valid[i] == 0 {
				res.valid[i] = 0
				continue
			}
			r[i] = fn(a[i], b[i], c[i])
			res.valid[i] = 1
		}
		finish(f, res, r)
		return codeOK
	})
}

// Func4 registers fn as the module's function of four arguments. Call it
// once, from init.
func Func4[A, B, C, D, R Value](fn func(A, B, C, D) R) {
	var aBuf []A
	var bBuf []B
	var cBuf []C
	var dBuf []D
	var rBuf []R
	register(fn, []int{width[A](), width[B](), width[C](), width[D](), width[R]()}, func(f *frame) int32 {
		a, ok0 := args(f, &f.cols[0], &aBuf)
		b, ok1 := args(f, &f.cols[1], &bBuf)
		c, ok2 := args(f, &f.cols[2], &cBuf)
		d, ok3 := args(f, &f.cols[3], &dBuf)
		if !ok0 || !ok1 || !ok2 || !ok3 {
			return codeBadFrame
		}
		res := &f.cols[4]
		r := results(f, res, &rBuf)
		for i := range f.rows {
			if f.cols[0].valid[i]&f.cols[1].valid[i]&f.cols[2].valid[i]&f.cols[3].valid[i] == 0 {
				res.valid[i] = 0
				continue
			}
			r[i] = fn(a[i], b[i], c[i], d[i])
			res.valid[i] = 1
		}
		finish(f, res, r)
		return codeOK
	})
}

// Func5 registers fn as the module's function of five arguments. Call it
// once, from init.
func Func5[A, B, C, D, E, R Value](fn func(A, B, C, D, E) R) {
	var aBuf []A
	var bBuf []B
	var cBuf []C
	var dBuf []D
	var eBuf []E
	var rBuf []R
	register(fn, []int{width[A](), width[B](), width[C](), width[D](), width[E](), width[R]()}, func(f *frame) int32 {
		a, ok0 := args(f, &f.cols[0], &aBuf)
		b, ok1 := args(f, &f.cols[1], &bBuf)
		c, ok2 := args(f, &f.cols[2], &cBuf)
		d, ok3 := args(f, &f.cols[3], &dBuf)
		e, ok4 := args(f, &f.cols[4], &eBuf)
		if !ok0 || !ok1 || !ok2 || !ok3 || !ok4 {
			return codeBadFrame
		}
		res := &f.cols[5]
		r := results(f, res, &rBuf)
		for i := range f.rows {
			if f.cols[0].valid[i]&f.cols[1].valid[i]&f.cols[2].valid[i]&f.cols[3].valid[i]&f.cols[4].valid[i] == 0 {
				res.valid[i] = 0
				continue
			}
			r[i] = fn(a[i], b[i], c[i], d[i], e[i])
			res.valid[i] = 1
		}
		finish(f, res, r)
		return codeOK
	})
}
