package prom

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/stretchr/testify/require"
)

// checks runs each kind of check against url and returns their errors.
func checkErrors(t *testing.T, cfg ClientConfig) map[string]error {
	t.Helper()
	alerts, err := NewAlertChecker(AlertConfig{ClientConfig: cfg})
	require.NoError(t, err)
	query, err := NewQueryChecker(cfg, "up == 0")
	require.NoError(t, err)
	health, err := NewHealthChecker(cfg, "up == 1")
	require.NoError(t, err)
	errs := map[string]error{}
	var detail string
	detail, errs["alerts"] = alerts.Check(t.Context())
	require.Empty(t, detail)
	detail, errs["query"] = query.Check(t.Context())
	require.Empty(t, detail)
	var healthy bool
	healthy, _, errs["health"] = health.Healthy(t.Context())
	require.False(t, healthy)
	return errs
}

// serve starts a real HTTP server on 127.0.0.1 that answers every request with h.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClosedPortIsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now: connection refused
	for what, err := range checkErrors(t, ClientConfig{URL: "http://" + addr}) {
		require.ErrorIs(t, err, ErrUnreachable, what)
		require.True(t, IsUnreachable(err), what)
		require.ErrorContains(t, err, "connection refused", what)
		require.ErrorContains(t, err, "http://"+addr, what)
	}
}

func TestServerErrorIsUnreachable(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable} {
		url := serve(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "the backend is down", code)
		})
		for what, err := range checkErrors(t, ClientConfig{URL: url}) {
			require.ErrorIs(t, err, ErrUnreachable, "%s, %d", what, code)
			require.NotErrorIs(t, err, ErrBadResponse)
			var apiErr *v1.Error
			require.ErrorAs(t, err, &apiErr, "the client's error stays in the chain")
			require.Equal(t, v1.ErrServer, apiErr.Type)
		}
	}
}

func TestNoAnswerInTimeIsUnreachable(t *testing.T) {
	release := make(chan struct{})
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select { // answer only once the client gives up, or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	start := time.Now()
	for what, err := range checkErrors(t, ClientConfig{URL: url, Timeout: 200 * time.Millisecond}) {
		require.ErrorIs(t, err, ErrUnreachable, what)
		require.ErrorContains(t, err, "no answer within 200ms", what)
	}
	require.Less(t, time.Since(start), 10*time.Second, "three checks of 200ms each")
}

func TestCallerCancelIsNotUnreachable(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c, err := NewAlertChecker(AlertConfig{ClientConfig: ClientConfig{URL: url}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.Check(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, IsUnreachable(err), "the caller leaving says nothing about Prometheus: %v", err)

	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Check(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, IsUnreachable(err), "%v", err)
}

func TestStrangeAnswersAreBadResponses(t *testing.T) {
	cases := map[string]http.HandlerFunc{
		"not found": http.NotFound,
		"forbidden": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusForbidden)
		},
		"not json": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>a login page</html>"))
		},
		"unknown result type": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"table","result":[], "alerts":{}}}`))
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			for what, err := range checkErrors(t, ClientConfig{URL: serve(t, h)}) {
				require.ErrorIs(t, err, ErrBadResponse, what)
				require.False(t, IsUnreachable(err), what)
				require.NotErrorIs(t, err, ErrBadQuery, what)
			}
		})
	}
}

func TestRejectedQueryIsBadQuery(t *testing.T) {
	// What Prometheus sends for a query it cannot parse (400) or evaluate (422).
	for code, body := range map[int]string{
		http.StatusBadRequest:          `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}`,
		http.StatusUnprocessableEntity: `{"status":"error","errorType":"execution","error":"found duplicate series for the match group"}`,
	} {
		url := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		})
		q, err := NewQueryChecker(ClientConfig{URL: url}, "sum(up")
		require.NoError(t, err)
		_, err = q.Check(t.Context())
		require.ErrorIs(t, err, ErrBadQuery)
		require.False(t, IsUnreachable(err))
		require.ErrorContains(t, err, `--block-while-query "sum(up" at `+url+`: prometheus rejected the query`)
	}
}

func TestErrorsNameNoPassword(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	for _, hostPort := range []string{url[len("http://"):], closed} {
		for what, err := range checkErrors(t, ClientConfig{URL: "http://me:s3cret@" + hostPort}) {
			require.ErrorIs(t, err, ErrUnreachable, what)
			require.NotContains(t, err.Error(), "s3cret", what)
			require.Contains(t, err.Error(), "http://me:xxxxx@"+hostPort, what)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	// The sentinels are distinct, so errors.Is tells the cases apart.
	all := []error{ErrUnreachable, ErrBadQuery, ErrBadResponse}
	for i, a := range all {
		for j, b := range all {
			require.Equal(t, i == j, errors.Is(a, b))
		}
	}
}
