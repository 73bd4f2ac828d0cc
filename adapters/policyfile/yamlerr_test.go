package policyfile_test

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
)

// TestDecodeErrorsNameTheLineNotTheValue: a YAML type error quoted the
// scalar it could not use (up to ten characters, or the first seven),
// and a policy file's scalars include passwords: a secret written where a
// list belongs (a misplaced line) reached the error, and with it the logs
// and /readyz. The errors name the line and what was expected, never the
// value.
func TestDecodeErrorsNameTheLineNotTheValue(t *testing.T) {
	for name, tc := range map[string]struct {
		file, secret, line string
	}{
		"short value as the users list": {"users: pw12345\n", "pw12345", "line 1"},
		"long value as sourceIps": {"users:\n  - username: app1\n    password: x\nacls:\n  - subject: User:app1\n    policies:\n      - policyType: Custom\n        entries:\n          - resource: Topic:t\n            actions: Pub\n            decision: Allow\n            sourceIps: hunter2-long-secret\n",
			"hunter2", "line 12"},
		"value as a user":  {"users:\n  - s3cr3t!\n", "s3cr3t!", "line 2"},
		"value as actions": {"acls:\n  - subject: User:a\n    policies:\n      - policyType: Custom\n        entries:\n          - resource: Topic:t\n            actions: {tok3n: x}\n            decision: Allow\n", "", "line 7"},
		"JSON array":       {`[{"subject": "User:a", "policies": "t0k3nvalue"}]`, "t0k3nva", "line 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := policyfile.Decode([]byte(tc.file))
			if err == nil {
				t.Fatal("decoded")
			}
			msg := err.Error()
			t.Log(msg)
			if tc.secret != "" && strings.Contains(msg, tc.secret) {
				t.Errorf("error echoes the value %q: %s", tc.secret, msg)
			}
			if !strings.Contains(msg, tc.line) {
				t.Errorf("error does not name %s: %s", tc.line, msg)
			}
		})
	}
	// plain_acl.yml too.
	_, _, _, err := policyfile.DecodePlainACL([]byte("accounts: myS3cret\n"))
	if err == nil || strings.Contains(err.Error(), "myS3cret") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("plain_acl.yml with a value as its accounts: %v; want the line, not the value", err)
	}
	// Unknown keys are still named.
	_, _, err = policyfile.Decode([]byte("users:\n  - username: a\n    pasword: x\n"))
	if err == nil || !strings.Contains(err.Error(), `line 3: unknown key "pasword"`) || strings.Contains(err.Error(), "policyfile.") {
		t.Errorf("unknown key: %v; want it named with its line", err)
	}
}
