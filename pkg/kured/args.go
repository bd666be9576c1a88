package kured

import (
	"encoding/csv"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ErrKuredConfig is wrapped by every FlagError: the kured container's
// configuration is one kured itself refuses at start, so there is no working
// configuration to migrate.
var ErrKuredConfig = errors.New("kured would refuse this configuration")

// FlagError names the kured flag, where its value came from and the value.
type FlagError struct {
	Flag   string // kured's flag name, without "--"
	Source string // "argument", or the KURED_* variable
	Value  string
	Reason string
}

func (e *FlagError) Error() string {
	if e.Source == "argument" || e.Source == "" {
		return fmt.Sprintf("kured flag --%s %q: %s", e.Flag, e.Value, e.Reason)
	}
	return fmt.Sprintf("kured variable %s=%q (--%s): %s", e.Source, e.Value, e.Flag, e.Reason)
}

// Is makes errors.Is(err, ErrKuredConfig) true.
func (e *FlagError) Is(target error) bool { return target == ErrKuredConfig }

// envPrefix is kured's EnvPrefix: flag --drain-timeout is KURED_DRAIN_TIMEOUT.
const envPrefix = "KURED_"

// EnvName is the variable kured reads for a flag.
func EnvName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// setting is a kured flag as the container configures it.
type setting struct {
	flag    Flag
	values  []string // the value: one item for scalars, the list for slices and arrays
	changed bool     // an argument or a KURED_* variable set it
	args    int      // how many arguments set it
	env     string   // the KURED_* variable that set it last, if one did
	// from is a KURED_* variable whose value the manifest does not hold (a
	// Secret, a ConfigMap, a field): kured reads it, the migration cannot.
	from *corev1.EnvVarSource
}

// value is the flag's effective scalar value (its default when not set).
func (s *setting) value() string {
	if !s.changed {
		return s.flag.Default
	}
	if len(s.values) == 0 {
		return ""
	}
	return s.values[len(s.values)-1]
}

// config is what kured would run with: every flag of the table, and the notes
// on what the parse found and ignored.
type config struct {
	settings map[string]*setting
	order    []string // flag names in the table's order
	notes    []Note
}

func (c *config) get(name string) *setting { return c.settings[name] }

// parseConfig reads the container's command, arguments and environment as
// kured does: pflag's rules for the arguments (--x=y, --x y, a bare --x for a
// boolean, the last value of a scalar wins, lists append), then kured's
// LoadFromEnv, which sets every flag whose KURED_* variable exists — after the
// arguments, so a variable wins over an argument for a scalar and is appended
// to a list, and is ignored for a string array (kured: "Unsupported flag
// type").
func parseConfig(in Input) (*config, error) {
	flags := Flags()
	index := flagIndex(flags)
	c := &config{settings: make(map[string]*setting, len(flags))}
	for _, f := range flags {
		c.settings[f.Name] = &setting{flag: f}
		c.order = append(c.order, f.Name)
	}

	argv, err := kuredArgv(in.Command, in.Args)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(argv); i++ {
		tok := argv[i]
		switch {
		case tok == "--":
			c.note("", "arguments after \"--\" are ignored, by kured too: %q", argv[i+1:])
			i = len(argv)
		case strings.HasPrefix(tok, "--"):
			name, value, hasValue := strings.Cut(tok[2:], "=")
			f, known := index[name]
			switch {
			case name == "help":
				c.note("--help", "kured prints its usage and exits: this container does not run kured")
				continue
			case !known:
				if !hasValue && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
					value, hasValue = argv[i+1], true
					i++
				}
				if hasValue {
					c.note("--"+name, "not a flag of the kured versions this migration knows (value %q): not carried; kured itself exits on a flag it does not know", value)
				} else {
					c.note("--"+name, "not a flag of the kured versions this migration knows: not carried; kured itself exits on a flag it does not know")
				}
				continue
			case f.Kind == KindBool && !hasValue:
				value = "true" // pflag: a bare boolean flag is true; "--x false" does not take "false"
			case !hasValue && i+1 < len(argv):
				value = argv[i+1] // pflag takes the next word whatever it looks like
				i++
			case !hasValue:
				return nil, &FlagError{Flag: name, Source: "argument", Reason: "needs a value, and kured exits without one"}
			}
			if err := c.set(c.settings[name], value, "argument"); err != nil {
				return nil, err
			}
			c.settings[name].args++
		case strings.HasPrefix(tok, "-") && len(tok) > 1:
			if tok == "-h" {
				c.note("-h", "kured prints its usage and exits: this container does not run kured")
				continue
			}
			return nil, &FlagError{Flag: strings.TrimLeft(tok, "-"), Source: "argument", Value: tok,
				Reason: "kured has no single-dash flags (pflag reads this as shorthand letters and exits)"}
		default:
			c.note("", "positional argument %q is ignored, by kured too", tok)
		}
	}

	env := lastEnv(in.Env)
	for _, name := range c.order {
		s := c.settings[name]
		v, ok := env[EnvName(name)]
		if !ok {
			continue
		}
		delete(env, EnvName(name))
		if err := c.setFromEnv(s, v); err != nil {
			return nil, err
		}
	}
	for _, v := range in.Env {
		if _, left := env[v.Name]; !left {
			continue
		}
		delete(env, v.Name)
		if strings.HasPrefix(v.Name, envPrefix) {
			c.note(v.Name, "no kured flag of this name: not carried")
		} else {
			c.note(v.Name, "not a kured variable: not carried (add it to agent.extraEnv if nodepatch needs it, e.g. a proxy for --prometheus-url or --notify-url)")
		}
	}
	return c, nil
}

// kuredArgv is what kured's flag parser sees: the container's command after
// the program, then its arguments (Kubernetes appends args to command). With
// no command the image's entrypoint, kured, gets the arguments.
func kuredArgv(command, args []string) ([]string, error) {
	if len(command) == 0 {
		return args, nil
	}
	if path.Base(command[0]) != "kured" {
		return nil, &FlagError{Flag: "command", Source: "argument", Value: strings.Join(command, " "),
			Reason: "the container's command is not kured, so its flags cannot be read"}
	}
	return append(append([]string(nil), command[1:]...), args...), nil
}

// lastEnv keeps, for each name, the last definition: the one the container gets.
func lastEnv(env []corev1.EnvVar) map[string]corev1.EnvVar {
	m := make(map[string]corev1.EnvVar, len(env))
	for _, v := range env {
		m[v.Name] = v
	}
	return m
}

func (c *config) setFromEnv(s *setting, v corev1.EnvVar) error {
	name := v.Name
	if s.flag.Kind == KindStringArray {
		c.note(name, "kured ignores a variable for --%s (\"Unsupported flag type\"): not carried", s.flag.Name)
		return nil
	}
	if v.ValueFrom != nil {
		s.changed, s.env, s.from = true, name, v.ValueFrom
		return nil
	}
	value := v.Value
	// LoadFromEnv checks ints, booleans and durations itself before setting.
	switch s.flag.Kind {
	case KindInt:
		n, err := strconv.Atoi(value)
		if err != nil {
			return &FlagError{Flag: s.flag.Name, Source: name, Value: value, Reason: "not a decimal integer: " + err.Error()}
		}
		value = strconv.Itoa(n)
	case KindBool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return &FlagError{Flag: s.flag.Name, Source: name, Value: value, Reason: "not a boolean: " + err.Error()}
		}
		value = strconv.FormatBool(b)
	}
	before := s.value()
	if err := c.set(s, value, name); err != nil {
		return err
	}
	s.env, s.from = name, nil
	switch {
	case s.args == 0:
	case s.flag.Kind == KindStringSlice:
		c.note(name, "appended to --%s of the arguments, as kured's LoadFromEnv does (kured's older viper-based main used the arguments only): %q", s.flag.Name, s.values)
	case before != s.value():
		c.note(name, "overrides --%s=%s of the arguments, as kured's LoadFromEnv does; carried: %q (kured's older viper-based main let the argument win)",
			s.flag.Name, before, s.value())
	}
	return nil
}

// set applies one value as pflag's Set does for the flag's kind, refusing what
// kured refuses.
func (c *config) set(s *setting, value, source string) error {
	bad := func(err error) error {
		return &FlagError{Flag: s.flag.Name, Source: source, Value: value, Reason: err.Error()}
	}
	switch s.flag.Kind {
	case KindString:
		s.values = []string{value}
	case KindBool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return bad(err)
		}
		s.values = []string{strconv.FormatBool(b)}
	case KindInt:
		n, err := strconv.ParseInt(value, 0, 64)
		if err != nil {
			return bad(err)
		}
		s.values = []string{strconv.FormatInt(n, 10)}
	case KindDuration:
		if _, err := time.ParseDuration(value); err != nil {
			return bad(err)
		}
		s.values = []string{value}
	case KindRegexp:
		if _, err := regexp.Compile(value); err != nil {
			return bad(err)
		}
		s.values = []string{value}
	case KindStringSlice:
		items, err := readAsCSV(value)
		if err != nil {
			return bad(err)
		}
		if s.changed {
			s.values = append(s.values, items...)
		} else {
			s.values = items
		}
	case KindStringArray:
		if s.changed {
			s.values = append(s.values, value)
		} else {
			s.values = []string{value}
		}
	}
	s.changed = true
	s.from = nil
	return nil
}

// readAsCSV splits a list flag's value as pflag does: one CSV record, "" is
// the empty list.
func readAsCSV(value string) ([]string, error) {
	if value == "" {
		return []string{}, nil
	}
	return csv.NewReader(strings.NewReader(value)).Read()
}

// writeAsCSV joins items so that readAsCSV reads them back.
func writeAsCSV(items []string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write(items) // a strings.Builder does not fail
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

func (c *config) note(flag, format string, args ...any) {
	c.notes = append(c.notes, Note{Flag: flag, Text: fmt.Sprintf(format, args...)})
}
