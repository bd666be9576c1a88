package prom

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// AlertConfig configures an AlertChecker; one field per flag.
type AlertConfig struct {
	ClientConfig
	// NodeName replaces $NODE in LabelMatchers.
	NodeName string
	// FilterRegexp (--alert-filter-regexp): alerts whose name it matches are
	// ignored, or with FilterMatchOnly the only ones that count. Empty: no
	// filter.
	FilterRegexp string
	// FilterMatchOnly is --alert-filter-match-only.
	FilterMatchOnly bool
	// FiringOnly (--alert-firing-only): pending alerts do not block.
	FiringOnly bool
	// LabelMatchers (--alert-label-matchers): only alerts matching all of
	// them block, e.g. severity="critical",node=~"$NODE".
	LabelMatchers string
}

// Validate checks every setting and returns all problems at once, each
// naming its flag and value.
func (c AlertConfig) Validate() error {
	_, err := c.Filter()
	return errors.Join(c.ClientConfig.Validate(), err)
}

// Filter compiles the filter settings, with $NODE replaced.
func (c AlertConfig) Filter() (AlertFilter, error) {
	f := AlertFilter{MatchOnly: c.FilterMatchOnly, FiringOnly: c.FiringOnly}
	var errs []error
	if c.FilterRegexp != "" {
		re, err := regexp.Compile(c.FilterRegexp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", flagFilterRegexp, c.FilterRegexp, err))
		}
		f.Regexp = re
	}
	ms, err := ParseMatchers(c.LabelMatchers)
	if err == nil {
		ms, err = expandNode(ms, c.NodeName)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s %q: %w", flagLabelMatchers, c.LabelMatchers, err))
	}
	f.Matchers = ms
	if len(errs) > 0 {
		return AlertFilter{}, errors.Join(errs...)
	}
	return f, nil
}

// AlertChecker holds a reboot while alerts that pass its filter are active.
type AlertChecker struct {
	client *client
	filter AlertFilter
}

// NewAlertChecker validates cfg and makes the checker; it does not contact
// Prometheus.
func NewAlertChecker(cfg AlertConfig) (*AlertChecker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f, _ := cfg.Filter() // validated above
	c, err := newClient(cfg.ClientConfig)
	if err != nil {
		return nil, err
	}
	return &AlertChecker{client: c, filter: f}, nil
}

// Filter is the compiled filter the checker applies.
func (a *AlertChecker) Filter() AlertFilter { return a.filter }

// Alerts returns every active alert, unfiltered.
func (a *AlertChecker) Alerts(ctx context.Context) ([]Alert, error) {
	var res v1.AlertsResult
	err := a.client.do(ctx, "get alerts", func(ctx context.Context) error {
		var err error
		res, err = a.client.api.Alerts(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	alerts := make([]Alert, 0, len(res.Alerts))
	for _, pa := range res.Alerts {
		labels := make(map[string]string, len(pa.Labels))
		for k, v := range pa.Labels {
			labels[string(k)] = string(v)
		}
		alerts = append(alerts, Alert{Labels: labels, State: string(pa.State)})
	}
	return alerts, nil
}

// Check returns "" when no alert blocks, else a detail naming the blocking
// alerts (AlertsDetail). Any error means it cannot tell; see the package doc.
func (a *AlertChecker) Check(ctx context.Context) (string, error) {
	alerts, err := a.Alerts(ctx)
	if err != nil {
		return "", err
	}
	return AlertsDetail(a.filter.Blocking(alerts)), nil
}
