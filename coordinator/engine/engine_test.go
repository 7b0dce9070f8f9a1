package engine

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	imp, conv := scenario(10000, 1)
	s := newSession(t, Config{})
	load(t, s, imp, conv)
	res, err := s.Run(context.Background(), scenarioQuery, scenarioPolicy)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	t.Log(res.Rows, res.Suppressed, res.Schema)
	for _, b := range res.Batches {
		t.Log(b)
	}
}
