//go:build !linux

package main

// hardenProcess does nothing where the Linux process controls are missing.
func hardenProcess() error { return nil }
