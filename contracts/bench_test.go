package contracts

import "testing"

func BenchmarkParse(b *testing.B) {
	data := []byte(baseYAML())
	for b.Loop() {
		if _, err := Parse(data, ParseOptions{Now: testNow}); err != nil {
			b.Fatal(err)
		}
	}
}
