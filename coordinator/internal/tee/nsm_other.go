//go:build !linux

package tee

import "fmt"

func openNSM() (backend, error) {
	return nil, fmt.Errorf("the Nitro Secure Module is only reachable from Linux inside a Nitro enclave (for development use --attestation nitro-simulated)")
}
