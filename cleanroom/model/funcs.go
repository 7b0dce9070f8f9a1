package model

// Func1 registers fn as the module's function of one argument. Call it
// once, from init.
func Func1[A, R Value](fn func(A) R) {
	register(fn, []int{width[A](), width[R]()}, func(f *frame) int32 {
		a, r := &f.cols[0], &f.cols[1]
		for i := range f.rows {
			r.valid[i] = 0
			if !f.present(i) {
				continue
			}
			x, ok := get[A](f, a, i)
			if !ok {
				return codeBadFrame
			}
			set(f, r, i, fn(x))
		}
		return codeOK
	})
}

// Func2 registers fn as the module's function of two arguments. Call it
// once, from init.
func Func2[A, B, R Value](fn func(A, B) R) {
	register(fn, []int{width[A](), width[B](), width[R]()}, func(f *frame) int32 {
		a, b, r := &f.cols[0], &f.cols[1], &f.cols[2]
		for i := range f.rows {
			r.valid[i] = 0
			if !f.present(i) {
				continue
			}
			x, ok1 := get[A](f, a, i)
			y, ok2 := get[B](f, b, i)
			if !ok1 || !ok2 {
				return codeBadFrame
			}
			set(f, r, i, fn(x, y))
		}
		return codeOK
	})
}

// Func3 registers fn as the module's function of three arguments. Call it
// once, from init.
func Func3[A, B, C, R Value](fn func(A, B, C) R) {
	register(fn, []int{width[A](), width[B](), width[C](), width[R]()}, func(f *frame) int32 {
		a, b, c, r := &f.cols[0], &f.cols[1], &f.cols[2], &f.cols[3]
		for i := range f.rows {
			r.valid[i] = 0
			if !f.present(i) {
				continue
			}
			x, ok1 := get[A](f, a, i)
			y, ok2 := get[B](f, b, i)
			z, ok3 := get[C](f, c, i)
			if !ok1 || !ok2 || !ok3 {
				return codeBadFrame
			}
			set(f, r, i, fn(x, y, z))
		}
		return codeOK
	})
}

// Func4 registers fn as the module's function of four arguments. Call it
// once, from init.
func Func4[A, B, C, D, R Value](fn func(A, B, C, D) R) {
	register(fn, []int{width[A](), width[B](), width[C](), width[D](), width[R]()}, func(f *frame) int32 {
		a, b, c, d, r := &f.cols[0], &f.cols[1], &f.cols[2], &f.cols[3], &f.cols[4]
		for i := range f.rows {
			r.valid[i] = 0
			if !f.present(i) {
				continue
			}
			x, ok1 := get[A](f, a, i)
			y, ok2 := get[B](f, b, i)
			z, ok3 := get[C](f, c, i)
			w, ok4 := get[D](f, d, i)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return codeBadFrame
			}
			set(f, r, i, fn(x, y, z, w))
		}
		return codeOK
	})
}

// Func5 registers fn as the module's function of five arguments. Call it
// once, from init.
func Func5[A, B, C, D, E, R Value](fn func(A, B, C, D, E) R) {
	register(fn, []int{width[A](), width[B](), width[C](), width[D](), width[E](), width[R]()}, func(f *frame) int32 {
		a, b, c, d, e, r := &f.cols[0], &f.cols[1], &f.cols[2], &f.cols[3], &f.cols[4], &f.cols[5]
		for i := range f.rows {
			r.valid[i] = 0
			if !f.present(i) {
				continue
			}
			x, ok1 := get[A](f, a, i)
			y, ok2 := get[B](f, b, i)
			z, ok3 := get[C](f, c, i)
			w, ok4 := get[D](f, d, i)
			v, ok5 := get[E](f, e, i)
			if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
				return codeBadFrame
			}
			set(f, r, i, fn(x, y, z, w, v))
		}
		return codeOK
	})
}
