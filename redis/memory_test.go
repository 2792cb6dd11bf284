package redis

import "testing"

func TestMaxMemoryBytes(t *testing.T) {
	for in, want := range map[string]int64{"64mb": 64 << 20, "1GB": 1 << 30, "100k": 100_000, "512": 512, "2g": 2_000_000_000} {
		got, err := MaxMemoryBytes(in)
		if err != nil || got != want {
			t.Errorf("MaxMemoryBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "64 mb", "1tb", "-1"} {
		if _, err := MaxMemoryBytes(bad); err == nil {
			t.Errorf("MaxMemoryBytes(%q) accepted", bad)
		}
	}
}
