package coordinator

// faultHook, when set, is called at named points of the coordinator's
// state changes. It is nil in production; the fault-matrix tests set it
// (through export_test.go) to kill the process at a chosen point, so that
// crash safety is tested at every step of the life cycle, not only at
// random moments.
var faultHook func(point string)

// fault marks a point where a crash must leave the state consistent.
// Points are "<event type>/before-append" and "<event type>/after-append"
// around every log append, and the named points of uploads.
func fault(point string) {
	if faultHook != nil {
		faultHook(point)
	}
}
