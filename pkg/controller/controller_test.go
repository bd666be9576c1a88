package controller

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestInParallelReturnsEachErrorAtItsIndex: every index runs once, on no more
// than the workers asked for, and each error stays with its admission.
func TestInParallelReturnsEachErrorAtItsIndex(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 8}, {1, 8}, {5, 2}, {40, 8}} {
		var mu sync.Mutex
		ran, running, most := map[int]int{}, 0, 0
		errs := inParallel(tc.n, tc.workers, func(i int) error {
			mu.Lock()
			ran[i]++
			running++
			most = max(most, running)
			mu.Unlock()
			defer func() { mu.Lock(); running--; mu.Unlock() }()
			if i%3 == 0 {
				return fmt.Errorf("admission %d", i)
			}
			return nil
		})
		require.Len(t, errs, tc.n)
		require.LessOrEqual(t, most, tc.workers)
		for i := range tc.n {
			require.Equal(t, 1, ran[i], "index %d of %d", i, tc.n)
			if i%3 == 0 {
				require.EqualError(t, errs[i], fmt.Sprintf("admission %d", i))
			} else {
				require.NoError(t, errs[i])
			}
		}
	}
}
