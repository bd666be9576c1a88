package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// receiver is a real HTTP server on loopback that records what it gets.
type receiver struct {
	mu      sync.Mutex
	webhook map[string]int // Idempotency-Key → deliveries
	kinds   []string
	chat    []string // texts posted by the shoutrrr generic service
	fail    int      // answer 500 to this many webhook posts first
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch req.URL.Path {
	case "/webhook":
		if r.fail > 0 {
			r.fail--
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var ev struct {
			Kind string `json:"kind"`
			Node string `json:"node"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := req.Header.Get("Idempotency-Key")
		if r.webhook[key] == 0 {
			r.kinds = append(r.kinds, ev.Kind)
		}
		r.webhook[key]++
	case "/chat":
		r.chat = append(r.chat, string(body))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() (map[string]int, []string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := map[string]int{}
	for k, v := range r.webhook {
		keys[k] = v
	}
	return keys, append([]string(nil), r.kinds...), append([]string(nil), r.chat...)
}

// TestNotificationsArriveOnce: one cycle sends cycle-started, drained,
// rebooting and back to a JSON webhook, each once although the receiver
// fails the first posts, and kured's three messages to a shoutrrr URL.
func TestNotificationsArriveOnce(t *testing.T) {
	rc := &receiver{webhook: map[string]int{}, fail: 2}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := newCluster(t, setup{nodes: 1, flags: []string{"--notify-webhook=" + srv.URL + "/webhook",
		"--notify-url=generic://" + host + "/chat?disabletls=yes", "--message-template-reboot=Node %s goes down now"}})
	node := nodeName(0)
	c.needReboot(node)
	c.waitRebooted(1, node)
	c.waitFor("the four webhook events and the three chat messages", time.Minute, func() bool {
		_, kinds, chat := rc.snapshot()
		return len(kinds) >= 4 && len(chat) >= 3
	})
	keys, kinds, chat := rc.snapshot()
	require.Equal(t, []string{"cycle-started", "drained", "rebooting", "back"}, kinds)
	for key, n := range keys {
		require.Equal(t, 1, n, "event %s arrived %d times", key, n)
	}
	require.Len(t, chat, 3)
	require.Contains(t, chat[0], "Draining node "+node)
	require.Contains(t, chat[1], "Node "+node+" goes down now")
	require.Contains(t, chat[2], "Node "+node+" rebooted & uncordoned successfully!")
}
