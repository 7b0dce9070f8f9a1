package tee

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/sys/unix"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// NSMDevice is the Nitro Secure Module's device inside a Nitro enclave.
const NSMDevice = "/dev/nsm"

// The NSM driver's one ioctl (aws-nitro-enclaves-nsm-api, the Linux
// driver's nsm.h): _IOWR(0x0A, 0, struct nsm_message), where nsm_message is
// two iovecs, the CBOR request and the buffer for the CBOR response.
const (
	nsmIoctl           = 0xC0200A00
	nsmMaxResponseSize = 0x3000
)

type nsmMessage struct {
	request, response unix.Iovec
}

// nsmBackend asks the Nitro Secure Module for attestation documents.
type nsmBackend struct {
	mu sync.Mutex
	f  *os.File
}

func openNSM() (*nsmBackend, error) {
	f, err := os.OpenFile(NSMDevice, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Nitro Secure Module (%s is missing): is this a Nitro enclave? (for development use --attestation nitro-simulated)", NSMDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the Nitro Secure Module: %w", err)
	}
	return &nsmBackend{f: f}, nil
}

// nsmRequest is the NSM API's Attestation request: user_data carries the
// 64 bytes of the key binding; nonce and public_key are left out.
type nsmRequest struct {
	Attestation struct {
		UserData  []byte `cbor:"user_data"`
		Nonce     []byte `cbor:"nonce"`
		PublicKey []byte `cbor:"public_key"`
	} `cbor:"Attestation"`
}

type nsmResponse struct {
	Attestation *struct {
		Document []byte `cbor:"document"`
	} `cbor:"Attestation,omitempty"`
	Error string `cbor:"Error,omitempty"`
}

func (b *nsmBackend) evidence(reportData [64]byte) (attest.Evidence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var req nsmRequest
	req.Attestation.UserData = reportData[:]
	in, err := cbor.Marshal(req)
	if err != nil {
		return nil, err
	}
	out := make([]byte, nsmMaxResponseSize)
	msg := nsmMessage{
		request:  unix.Iovec{Base: &in[0], Len: uint64(len(in))},
		response: unix.Iovec{Base: &out[0], Len: uint64(len(out))},
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, b.f.Fd(), nsmIoctl, uintptr(unsafe.Pointer(&msg))); errno != 0 {
		return nil, fmt.Errorf("asking the Nitro Secure Module for an attestation document: %v", errno)
	}
	var resp nsmResponse
	if err := cbor.Unmarshal(out[:msg.response.Len], &resp); err != nil {
		return nil, fmt.Errorf("the Nitro Secure Module's answer: %v", err)
	}
	if resp.Error != "" || resp.Attestation == nil {
		return nil, fmt.Errorf("the Nitro Secure Module refused an attestation document: %q", resp.Error)
	}
	return attest.NewNitroEvidence(contracts.PlatformNitro, resp.Attestation.Document)
}
