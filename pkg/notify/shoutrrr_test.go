package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The --notify-url path end to end: a real shoutrrr generic:// service posting
// to a real receiver, with kured's messages.
func TestShoutrrrSendsKuredMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config Config
		want   []string
	}{
		{
			name: "kured's defaults",
			want: []string{"Draining node node-a", "Rebooting node node-a", "Node node-a rebooted & uncordoned successfully!"},
		},
		{
			name: "custom templates",
			config: Config{MessageTemplateDrain: "Draining node %s part of *prod* (100%% planned)",
				MessageTemplateReboot: "Reboot: %s", MessageTemplateUncordon: "All good again"},
			want: []string{"Draining node node-a part of *prod* (100% planned)", "Reboot: node-a", "All good again"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chat := newReceiver(t, ok)
			c := tc.config
			c.URLs = []string{genericURL(chat, "/chat")}
			obs := newRecorder()
			c.Observer = obs
			n := started(t, c)
			for _, e := range cycle("node-a", "c-1") {
				n.Notify(e)
			}
			flush(t, n)

			requests, _, _ := chat.snapshot()
			var got []string
			for _, r := range requests {
				got = append(got, r.body)
			}
			// Only kured's three kinds, in order, each once.
			require.Equal(t, tc.want, got)
			require.Equal(t, map[string]int{"generic drained": 1, "generic rebooting": 1, "generic back": 1}, obs.delivered)
		})
	}
}

func TestShoutrrrCustomURLAndRetries(t *testing.T) {
	// generic+http:// is shoutrrr's form for any webhook URL; the receiver
	// fails the first attempt, which is retried like a webhook's.
	chat := newReceiver(t, func(r request) int {
		if r.attempt == 1 { // shoutrrr sends no key: all count under ""
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	obs := newRecorder()
	n := started(t, Config{URLs: []string{"generic+" + chat.URL + "/hook"}, Observer: obs, MaxAttempts: 2})
	n.Notify(Event{Kind: Rebooting, Node: "node-b", Cycle: "c-2"})
	flush(t, n)
	requests, _, _ := chat.snapshot()
	require.Len(t, requests, 2)
	require.Equal(t, "Rebooting node node-b", requests[1].body)
	require.Equal(t, map[string]int{"generic rebooting": 1}, obs.delivered)
}

func TestShoutrrrFailureIsCountedWithoutSecrets(t *testing.T) {
	chat := newReceiver(t, func(request) int { return http.StatusForbidden })
	obs := newRecorder()
	raw := genericURL(chat, "/hook/s3cr3t-t0ken")
	n := started(t, Config{URLs: []string{raw}, Observer: obs, MaxAttempts: 2})
	n.Notify(Event{Kind: Back, Node: "node-c", Cycle: "c-3"})
	flush(t, n)
	requests, _, _ := chat.snapshot()
	require.Len(t, requests, 2, "shoutrrr's errors do not say what is final: every one is retried")
	errs := obs.failures("generic back")
	require.Len(t, errs, 1)
	require.NotContains(t, errs[0].Error(), "s3cr3t-t0ken")
	require.Contains(t, errs[0].Error(), "403")
	require.Equal(t, Stats{Failed: 1}, n.Stats())
}

func TestShoutrrrURLErrorsHideSecrets(t *testing.T) {
	for _, tc := range []struct {
		url    string
		reason string
	}{
		{"slakc://xoxb:s3cr3t-t0ken@channel", `unknown service "slakc"`},
		{"telegram://s3cr3t-t0ken@telegram", "the telegram service refused it: invalid telegram token"},
		{"slack://xoxb:s3cr3t-t0ken@channel", "the slack service refused it: invalid slack token format"},
		{"discord://s3cr3t-t0ken", "the discord service refused it"},
		{"just words", "not a URL"},
	} {
		_, err := New(Config{URLs: []string{tc.url}})
		require.Error(t, err, tc.url)
		var fe *FlagError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, FlagURL, fe.Flag)
		require.Contains(t, err.Error(), "--notify-url ")
		require.Contains(t, err.Error(), tc.reason)
		require.NotContains(t, err.Error(), "s3cr3t", "the error shows a secret: %v", err)
		if strings.Contains(tc.url, "://") {
			require.Contains(t, fe.Value, tc.url[:strings.Index(tc.url, "://")], "the value names the URL")
		}
	}
}

func TestMatrixIsSetUpAtTheFirstSend(t *testing.T) {
	// matrix logs in when set up: that happens at the first send (and its
	// retries), so a server that is down at start does not fail New.
	server := newReceiver(t, func(request) int { return http.StatusServiceUnavailable })
	raw := "matrix://bot:s3cr3t-passw0rd@" + strings.TrimPrefix(server.URL, "http://") + "?disabletls=yes"
	obs := newRecorder()
	n := started(t, Config{URLs: []string{raw}, Observer: obs, MaxAttempts: 3})
	require.Empty(t, func() []request { r, _, _ := server.snapshot(); return r }(), "nothing is asked at start")
	n.Notify(Event{Kind: Drained, Node: "node-d", Cycle: "c-4"})
	flush(t, n)
	requests, _, _ := server.snapshot()
	require.Len(t, requests, 3, "every attempt tries to log in again")
	errs := obs.failures("matrix drained")
	require.Len(t, errs, 1)
	require.ErrorContains(t, errs[0], "setting up the matrix service")
	require.NotContains(t, errs[0].Error(), "s3cr3t")
}

func TestShoutrrrAbandonedCallEndsAtTheTimeout(t *testing.T) {
	// The receiver never answers. The service's call cannot be cancelled,
	// but the client it is given times out with the attempt: the next
	// attempt gets to send (calls to one URL never overlap, so without that
	// timeout it would find the first still under way and send nothing).
	var mu sync.Mutex
	requests := 0
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only once the body is read
		<-r.Context().Done()               // until the client gives up
	}))
	t.Cleanup(func() {
		hang.CloseClientConnections() // a call still under way (the bug this looks for) must not stall Close
		hang.Close()
	})
	obs := newRecorder()
	n := started(t, Config{URLs: []string{"generic+" + hang.URL + "/hook"}, Observer: obs, MaxAttempts: 2,
		AttemptTimeout: 200 * time.Millisecond})
	n.Notify(Event{Kind: Back, Node: "node-e", Cycle: "c-5"})
	flush(t, n)
	mu.Lock()
	require.Equal(t, 2, requests)
	mu.Unlock()
	errs := obs.failures("generic back")
	require.Len(t, errs, 1)
	require.Equal(t, Stats{Failed: 1}, n.Stats())
}
