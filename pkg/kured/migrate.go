package kured

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// ErrNoKuredContainer: the DaemonSet has no container named kured and more
// than one container, so which one runs kured is not known.
var ErrNoKuredContainer = errors.New("no kured container")

// Input is a kured container and what of its pod the migration reads.
type Input struct {
	Command, Args []string
	Env           []corev1.EnvVar
	// VolumeMounts and Volumes tell where kured's --reboot-sentinel, a path
	// inside kured's container, is on the host.
	VolumeMounts []corev1.VolumeMount
	Volumes      []corev1.Volume
	// DaemonSetName and DaemonSetNamespace are where kured runs, to compare
	// with its --ds-name and --ds-namespace; empty when not known.
	DaemonSetName, DaemonSetNamespace string
	// The scheduling of kured's pods, carried so that nodepatch's agents run
	// on the same nodes.
	NodeSelector      map[string]string
	Tolerations       []corev1.Toleration
	Affinity          *corev1.Affinity
	PriorityClassName string
}

// FromDaemonSet takes the Input from a kured DaemonSet: its container named
// kured, or its only container.
func FromDaemonSet(ds *appsv1.DaemonSet) (Input, error) {
	spec := ds.Spec.Template.Spec
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "kured" {
			c = &spec.Containers[i]
		}
	}
	if c == nil && len(spec.Containers) == 1 {
		c = &spec.Containers[0]
	}
	if c == nil {
		names := make([]string, 0, len(spec.Containers))
		for _, c := range spec.Containers {
			names = append(names, c.Name)
		}
		return Input{}, fmt.Errorf("daemonset %s/%s: %w: none is named kured among its containers %q", ds.Namespace, ds.Name, ErrNoKuredContainer, names)
	}
	return Input{
		Command: c.Command, Args: c.Args, Env: c.Env,
		VolumeMounts: c.VolumeMounts, Volumes: spec.Volumes,
		DaemonSetName: ds.Name, DaemonSetNamespace: ds.Namespace,
		NodeSelector: spec.NodeSelector, Tolerations: spec.Tolerations, Affinity: spec.Affinity,
		PriorityClassName: spec.PriorityClassName,
	}, nil
}

// Note is something of kured's configuration that nodepatch does not take as
// it is: no equivalent, a different behaviour, a value the migration cannot
// read.
type Note struct {
	Flag string // the kured flag ("--lock-ttl") or variable it is about; empty for the whole configuration
	Text string
}

func (n Note) String() string {
	if n.Flag == "" {
		return n.Text
	}
	return n.Flag + ": " + n.Text
}

// Result is the migration: nodepatch chart values and the notes.
type Result struct {
	Values map[string]any
	Notes  []Note
}

// Migrate maps a kured container's configuration to nodepatch chart values.
// It fails, with a FlagError, only on a configuration kured itself refuses.
func Migrate(in Input) (Result, error) {
	cfg, err := parseConfig(in)
	if err != nil {
		return Result{}, err
	}
	m := &migration{in: in, cfg: cfg, values: map[string]any{}}
	m.notes = append(m.notes, cfg.notes...)
	for _, name := range cfg.order {
		s := cfg.get(name)
		switch {
		case s.flag.With != "":
			// converted with the flag it names
		case s.flag.convert != nil:
			err = s.flag.convert(m, s)
		}
		if err != nil {
			return Result{}, err
		}
		if !s.changed && s.flag.IfUnset != "" {
			m.note(s, "%s", s.flag.IfUnset)
		}
	}
	m.finish()
	return Result{Values: m.values, Notes: m.notes}, nil
}

// YAML renders the values as a values file, the notes as comments above them.
func (r Result) YAML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# nodepatch chart values migrated from kured (nodepatch migrate from-kured).\n")
	if len(r.Notes) > 0 {
		b.WriteString("#\n# Notes:\n")
		for _, n := range r.Notes {
			b.WriteString("# - " + commentText(n.String()) + "\n")
		}
	}
	out, err := valuesYAML(r.Values)
	if err != nil {
		return nil, err
	}
	b.WriteString("\n")
	b.Write(out)
	return b.Bytes(), nil
}

// valuesYAML renders values as block YAML when that reads back to the same
// values. The YAML encoder refuses some characters (DEL) and folds others
// (NEL) that a kured argument could hold; JSON, which every YAML parser reads,
// keeps them all, escaped.
func valuesYAML(values map[string]any) ([]byte, error) {
	asJSON, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("rendering the values: %w", err)
	}
	var want any
	if err := json.Unmarshal(asJSON, &want); err != nil {
		return nil, fmt.Errorf("rendering the values: %w", err)
	}
	if out, err := yaml.Marshal(values); err == nil {
		var back any
		if yaml.Unmarshal(out, &back) == nil && reflect.DeepEqual(want, back) {
			return out, nil
		}
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, asJSON, "", "  "); err != nil {
		return nil, fmt.Errorf("rendering the values: %w", err)
	}
	// JSON leaves DEL, the C1 controls and the byte order mark raw, and a YAML
	// parser refuses or folds them; outside strings JSON has none of them.
	var out strings.Builder
	for _, r := range indented.String() {
		if r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfeff {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.WriteRune(r)
		}
	}
	out.WriteString("\n")
	return []byte(out.String()), nil
}

// commentText makes text safe inside a YAML comment: a line break continues
// the comment on the next line, and any other character YAML could take as a
// line break or refuse (control characters, NEL, the line and paragraph
// separators) is escaped as \uXXXX. Invalid UTF-8 becomes U+FFFD.
func commentText(text string) string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == '\n':
			b.WriteString("\n#   ")
		case r == '\t' || (unicode.IsPrint(r) && r != '\u0085' && r != '\u2028' && r != '\u2029' && r != '\uFEFF'):
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, `\u%04X`, r)
		}
	}
	return b.String()
}

// migration builds the values as the flags are converted.
type migration struct {
	in       Input
	cfg      *config
	values   map[string]any
	notes    []Note
	extraEnv []corev1.EnvVar
}

// setValue puts v at a dotted chart value path.
func (m *migration) setValue(path string, v any) {
	keys := strings.Split(path, ".")
	node := m.values
	for _, k := range keys[:len(keys)-1] {
		next, ok := node[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			node[k] = next
		}
		node = next
	}
	node[keys[len(keys)-1]] = v
}

func (m *migration) note(s *setting, format string, args ...any) {
	flag := ""
	if s != nil {
		flag = "--" + s.flag.Name
	}
	m.notes = append(m.notes, Note{Flag: flag, Text: fmt.Sprintf(format, args...)})
}

// given says whether the flag is set to a value the migration can read. A
// value kured takes from a Secret, a ConfigMap or a field is noted instead.
func (m *migration) given(s *setting) bool {
	if s.from != nil {
		target := "its nodepatch counterpart"
		if len(s.flag.Paths) > 0 {
			target = strings.Join(s.flag.Paths, " or ")
		}
		m.note(s, "kured takes it from %s (%s), which the manifest does not hold: set %s yourself", s.env, describeSource(s.from), target)
		return false
	}
	return s.changed
}

func describeSource(src *corev1.EnvVarSource) string {
	switch {
	case src.SecretKeyRef != nil:
		return fmt.Sprintf("Secret %s, key %s", src.SecretKeyRef.Name, src.SecretKeyRef.Key)
	case src.ConfigMapKeyRef != nil:
		return fmt.Sprintf("ConfigMap %s, key %s", src.ConfigMapKeyRef.Name, src.ConfigMapKeyRef.Key)
	case src.FieldRef != nil:
		return "field " + src.FieldRef.FieldPath
	case src.ResourceFieldRef != nil:
		return "resource " + src.ResourceFieldRef.Resource
	}
	return "a reference"
}

// finish adds what no single flag decides: kured never patches, the
// variables from Secrets, and the scheduling of kured's pods.
func (m *migration) finish() {
	m.setValue("agent.patch.mode", "off")
	m.notes = append(m.notes, Note{Text: "kured never installs updates; agent.patch.mode is off so that nodepatch only coordinates reboots, as kured did. " +
		"Set it to security (nodepatch's default) once nodepatch, not unattended-upgrades or dnf-automatic, is to apply them"})
	m.notes = append(m.notes, Note{Text: "kured's drains also delete pods that no controller manages (kubectl drain --force); nodepatch's do so only with agent.drain.force: true, " +
		"and with false (the chart's default) such a pod makes the drain fail and retry. Set it if you relied on kured for that"})
	if len(m.extraEnv) > 0 {
		m.setValue("agent.extraEnv", toValues(m.extraEnv))
	}
	if len(m.in.NodeSelector) > 0 {
		m.setValue("nodeSelector", m.in.NodeSelector)
	}
	if len(m.in.Tolerations) > 0 {
		m.setValue("tolerations", toValues(m.in.Tolerations))
	}
	if m.in.Affinity != nil {
		m.setValue("affinity", toValues(m.in.Affinity))
	}
	if m.in.PriorityClassName != "" {
		m.setValue("priorityClassName", m.in.PriorityClassName)
	}
}

// toValues turns API objects into plain values, as a values file holds them.
func toValues(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshalling %T: %v", v, err)) // API types always marshal
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("unmarshalling %T: %v", v, err))
	}
	return out
}
