package tee

import (
	"crypto/sha512"
	"fmt"
	"io"
	"os"
	"sync"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
)

// simBackend produces simulated evidence: reports signed by the data
// directory's fake VCEK whose MEASUREMENT is the SHA-384 of the running
// executable, so a contract still pins the exact coordinator binary.
type simBackend struct {
	mu          sync.Mutex
	platform    *simulated.Platform
	measurement [48]byte
}

func (b *simBackend) evidence(reportData [64]byte) (attest.Evidence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.platform.Attest(simulated.Request{Measurement: b.measurement, ReportData: reportData})
}

// ExecutableMeasurement returns the SHA-384 of the running executable's
// file: the MEASUREMENT of simulated reports.
func ExecutableMeasurement() ([48]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return [48]byte{}, fmt.Errorf("finding the running executable: %v", err)
	}
	return FileMeasurement(exe)
}

// FileMeasurement returns the SHA-384 of a file: what the simulated
// platform reports as MEASUREMENT when that file is the running coordinator.
func FileMeasurement(path string) ([48]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [48]byte{}, fmt.Errorf("measuring the coordinator executable: %v", err)
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return [48]byte{}, fmt.Errorf("measuring %s: %v", path, err)
	}
	var m [48]byte
	h.Sum(m[:0])
	return m, nil
}
