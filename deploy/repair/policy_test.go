package repair

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	for _, c := range []struct {
		name    string
		in, out Policy
	}{
		{"all unset", Policy{}, Policy{GracePeriod: 10 * time.Minute, Action: Replace}},
		{"enabled kept", Policy{Enabled: true}, Policy{Enabled: true, GracePeriod: 10 * time.Minute, Action: Replace}},
		{"set fields kept", Policy{Enabled: true, GracePeriod: 5 * time.Second, Action: Reimage}, Policy{Enabled: true, GracePeriod: 5 * time.Second, Action: Reimage}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			Default(&got)
			if got != c.out {
				t.Errorf("got %+v, want %+v", got, c.out)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Policy
		want []string
		msg  string
	}{
		{"defaults", Policy{GracePeriod: DefaultGracePeriod, Action: Replace}, nil, ""},
		{"bounds", Policy{Enabled: true, GracePeriod: time.Second, Action: Restart}, nil, ""},
		{"upper bound", Policy{Enabled: true, GracePeriod: 90 * time.Minute, Action: Reimage}, nil, ""},
		{"grace too short", Policy{GracePeriod: 500 * time.Millisecond, Action: Replace}, []string{"automaticRepairs.gracePeriod"}, "gracePeriod must be 1s-1h30m0s, got 500ms"},
		{"grace too long", Policy{GracePeriod: 91 * time.Minute, Action: Replace}, []string{"automaticRepairs.gracePeriod"}, ""},
		{"unknown action", Policy{GracePeriod: time.Minute, Action: "Reboot"}, []string{"automaticRepairs.repairAction"}, "want Replace, Restart or Reimage"},
		{"action in another case", Policy{GracePeriod: time.Minute, Action: "replace"}, []string{"automaticRepairs.repairAction"}, "did you mean Replace?"},
		{"checked when disabled too", Policy{Action: "x"}, []string{"automaticRepairs.gracePeriod", "automaticRepairs.repairAction"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.p)
			if got := fields(err); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, c.want, err)
			}
			if c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)) {
				t.Errorf("error %v does not say %q", err, c.msg)
			}
		})
	}
}

// fields lists the paths of the *FieldErrors in err.
func fields(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			panic(fmt.Sprintf("%v is not a *FieldError", e))
		}
		out = append(out, fe.Field)
	}
	return out
}
