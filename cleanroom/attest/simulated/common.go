package simulated

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// readPEM splits data into PEM blocks of the given types, in order, and
// nothing else.
func readPEM(data []byte, types ...string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the last PEM block", ErrBadPlatform)
	}
	if len(blocks) != len(types) {
		return nil, fmt.Errorf("%w: %d PEM blocks, want %d (%v)", ErrBadPlatform, len(blocks), len(types), types)
	}
	for i, b := range blocks {
		if b.Type != types[i] {
			return nil, fmt.Errorf("%w: PEM block %d is %q, want %q", ErrBadPlatform, i, b.Type, types[i])
		}
	}
	return blocks, nil
}

func writePEM(blocks ...*pem.Block) ([]byte, error) {
	var b bytes.Buffer
	for _, blk := range blocks {
		if err := pem.Encode(&b, blk); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

func ecKey(der []byte, curve elliptic.Curve, name string) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s key: %v", ErrBadPlatform, name, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != curve {
		return nil, fmt.Errorf("%w: the %s key is not ECDSA %s", ErrBadPlatform, name, curve.Params().Name)
	}
	return key, nil
}

func keyBlock(k *ecdsa.PrivateKey) (*pem.Block, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return &pem.Block{Type: pemKey, Bytes: der}, nil
}
