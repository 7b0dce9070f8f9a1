package main

import "golang.org/x/sys/unix"

// hardenProcess keeps the coordinator's memory (unsealed keys, decrypted
// datasets, results) out of core dumps and away from debuggers of the same
// user: no core file (RLIMIT_CORE 0) and not dumpable (which also refuses
// ptrace attachment by non-privileged processes). Inside the confidential
// VM the host cannot read memory anyway; this protects against the guest's
// own accidents and other processes in it.
func hardenProcess() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
