package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestFlushWaitsForTheEventsRecorded: Flush returns once the sink has handed
// the Events recorded before it to the API server, and not before.
func TestFlushWaitsForTheEventsRecorded(t *testing.T) {
	client := fake.NewClientset()
	gate := make(chan struct{})
	client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-gate // the API server is slow
		return false, nil, nil
	})
	recorder, flush, stop := newRecorder(client.CoreV1().Events(""), "node-a")
	defer stop()
	ref := &corev1.ObjectReference{Kind: "Node", Name: "node-a", UID: "node-a"}
	recorder.Event(ref, corev1.EventTypeNormal, "Rebooting", "rebooting (attempt 1)")

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, flush(short), context.DeadlineExceeded, "Flush returned before the Event was sent")

	close(gate)
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	require.NoError(t, flush(ctx))
	list, err := client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	require.Equal(t, "Rebooting", list.Items[0].Reason)
}
