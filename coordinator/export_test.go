package coordinator

// SetFaultHook installs the fault hook for tests (see faults.go).
func SetFaultHook(f func(point string)) { faultHook = f }
