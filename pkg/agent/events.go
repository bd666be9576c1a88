package agent

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// nodeRef is the object Events are recorded on: the agent's own Node. Its UID is
// the node's name, as the kubelet records host events, so that `kubectl describe
// node` (which looks under both the name and the real UID) shows them.
func (a *Agent) nodeRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Node", Name: a.cfg.NodeName, UID: types.UID(a.cfg.NodeName)}
}

func (a *Agent) event(eventType, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.cfg.Events.Event(a.nodeRef(), eventType, reason, msg)
	if eventType == corev1.EventTypeWarning {
		a.cfg.Log.Warn(msg, "reason", reason)
	} else {
		a.cfg.Log.Info(msg, "reason", reason)
	}
}

func (a *Agent) normal(reason, format string, args ...any) {
	a.event(corev1.EventTypeNormal, reason, format, args...)
}

func (a *Agent) warn(reason, format string, args ...any) {
	a.event(corev1.EventTypeWarning, reason, format, args...)
}

// normalOnce and warnOnce skip an Event that repeats the last one of its reason
// word for word: waiting steps are decided again on every watch event. A step
// that changes state forgets them (see forgetEvents), so a wait that comes back
// after a cycle is told again.
func (a *Agent) normalOnce(reason, format string, args ...any) {
	if a.firstTime(reason, fmt.Sprintf(format, args...)) {
		a.normal(reason, format, args...)
	}
}

func (a *Agent) warnOnce(reason, format string, args ...any) {
	if a.firstTime(reason, fmt.Sprintf(format, args...)) {
		a.warn(reason, format, args...)
	}
}

func (a *Agent) firstTime(reason, msg string) bool {
	if a.told == nil {
		a.told = map[string]string{}
	}
	if a.told[reason] == msg {
		return false
	}
	a.told[reason] = msg
	return true
}

func (a *Agent) forgetEvents() { a.told = nil }
