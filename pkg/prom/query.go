package prom

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// QueryChecker holds a reboot while its query has a result
// (--block-while-query).
type QueryChecker struct {
	client *client
	expr   string
}

// NewQueryChecker validates cfg and expr (which must not be empty; Prometheus
// judges the rest on the first check) and makes the checker.
func NewQueryChecker(cfg ClientConfig, expr string) (*QueryChecker, error) {
	c, err := newQueryClient(cfg, flagBlockQuery, expr)
	if err != nil {
		return nil, err
	}
	return &QueryChecker{client: c, expr: expr}, nil
}

func newQueryClient(cfg ClientConfig, flag, expr string) (*client, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("%s %q: the query must not be empty", flag, expr)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s needs Prometheus: %w", flag, err)
	}
	return newClient(cfg)
}

// Expr is the query.
func (q *QueryChecker) Expr() string { return q.expr }

// Check returns "" when the query gives no series (or a scalar that is zero
// or NaN), else a detail naming the query and how many series it gave.
func (q *QueryChecker) Check(ctx context.Context) (string, error) {
	v, err := q.client.query(ctx, flagBlockQuery, q.expr)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case model.Vector:
		if len(v) > 0 {
			return QueryDetail(q.expr, len(v)), nil
		}
	case model.Matrix:
		if len(v) > 0 {
			return QueryDetail(q.expr, len(v)), nil
		}
	case *model.Scalar:
		if truthy(v.Value) {
			return fmt.Sprintf("query %s returned %s", QuoteExpr(q.expr), v.Value), nil
		}
	}
	return "", nil
}

// HealthChecker says whether its query calls the node healthy
// (--health-query): at least one series, and no sample zero or NaN.
type HealthChecker struct {
	client *client
	expr   string
}

// NewHealthChecker validates cfg and expr (which must not be empty) and makes
// the checker.
func NewHealthChecker(cfg ClientConfig, expr string) (*HealthChecker, error) {
	c, err := newQueryClient(cfg, flagHealthQuery, expr)
	if err != nil {
		return nil, err
	}
	return &HealthChecker{client: c, expr: expr}, nil
}

// Expr is the query.
func (h *HealthChecker) Expr() string { return h.expr }

// Healthy runs the query; the detail says why in either case.
func (h *HealthChecker) Healthy(ctx context.Context) (bool, string, error) {
	v, err := h.client.query(ctx, flagHealthQuery, h.expr)
	if err != nil {
		return false, "", err
	}
	healthy, detail := judgeHealth(v)
	return healthy, fmt.Sprintf("health query %s %s", QuoteExpr(h.expr), detail), nil
}

// judgeHealth applies the health rule to a query's value (a vector, a matrix
// or a scalar; query refuses the rest).
func judgeHealth(v model.Value) (bool, string) {
	type series struct {
		metric model.Metric
		ok     bool
	}
	var all []series
	switch v := v.(type) {
	case *model.Scalar:
		if truthy(v.Value) {
			return true, fmt.Sprintf("returned %s", v.Value)
		}
		return false, fmt.Sprintf("returned %s, which is not true", v.Value)
	case model.Vector:
		for _, s := range v {
			all = append(all, series{s.Metric, truthy(s.Value)})
		}
	case model.Matrix:
		for _, s := range v {
			ok := true
			for _, p := range s.Values {
				ok = ok && truthy(p.Value)
			}
			all = append(all, series{s.Metric, ok})
		}
	}
	if len(all) == 0 {
		return false, "returned no series"
	}
	var bad []string
	for _, s := range all {
		if !s.ok {
			bad = append(bad, s.metric.String())
		}
	}
	if len(bad) == 0 {
		return true, fmt.Sprintf("returned %d series, none zero", len(all))
	}
	return false, fmt.Sprintf("returned %d series, %d of them zero or NaN: %s", len(all), len(bad), ListNames(bad, 3))
}

// truthy: a sample counts as true when it is neither zero nor NaN.
func truthy(v model.SampleValue) bool {
	f := float64(v)
	return f != 0 && !math.IsNaN(f)
}

// query runs an instant query at Prometheus's now, with the request timeout
// passed on as the evaluation timeout so that Prometheus gives up too.
func (c *client) query(ctx context.Context, flag, expr string) (model.Value, error) {
	what := fmt.Sprintf("%s %s", flag, QuoteExpr(expr))
	var v model.Value
	err := c.do(ctx, what, func(ctx context.Context) error {
		var err error
		v, _, _, err = c.api.Query(ctx, expr, time.Time{}, v1.WithTimeout(c.timeout))
		return err
	})
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case model.Vector, model.Matrix, *model.Scalar:
		return v, nil
	}
	// client_golang decodes nothing else; this guards a future version that does.
	return nil, fmt.Errorf("%s at %s: %w: a result of type %T, not series or a scalar", what, c.url, ErrBadQuery, v)
}
