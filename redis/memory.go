package redis

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var memoryPattern = regexp.MustCompile(`^(?i)([1-9][0-9]*)(b|k|kb|m|mb|g|gb)?$`)

// MaxMemoryBytes converts a Redis memory size (as in redis.conf: 1k = 1000, 1kb = 1024) to bytes.
func MaxMemoryBytes(s string) (int64, error) {
	m := memoryPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a Redis memory size", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	mult := map[string]int64{"": 1, "b": 1, "k": 1000, "kb": 1 << 10, "m": 1000 * 1000, "mb": 1 << 20, "g": 1000 * 1000 * 1000, "gb": 1 << 30}[strings.ToLower(m[2])]
	if n > (1<<50)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
