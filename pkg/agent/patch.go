package agent

import (
	"context"
	"time"
)

// Patcher applies the host's pending package updates.
type Patcher interface {
	Patch(ctx context.Context) error
}

type patchState struct{}

// runPatch is where patching joins the cycle; see the host packages.
func (a *Agent) runPatch(ctx context.Context, now time.Time) {}
