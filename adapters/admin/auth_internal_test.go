package admin

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAdminAccessNamesWhatTheHandlerActsOn: the resource authorized for a
// create or a verify is the one the handler decodes from the same body,
// also when the body repeats the key in another case (the handler's
// decoder matches keys case-insensitively and keeps the last).
func TestAdminAccessNamesWhatTheHandlerActsOn(t *testing.T) {
	for _, tc := range []struct {
		path, body string
		want       domain.Resource
		decoded    func(body string) (string, error)
	}{
		{"/v1/topics", `{"name":"team-a-x","NAME":"payments"}`, domain.TopicResource("payments"),
			func(b string) (string, error) {
				v, err := decodeBody[CreateTopicRequest](strings.NewReader(b))
				return v.Name, err
			}},
		{"/v1/topics", `{"Name":"payments"}`, domain.TopicResource("payments"),
			func(b string) (string, error) {
				v, err := decodeBody[CreateTopicRequest](strings.NewReader(b))
				return v.Name, err
			}},
		{"/v1/groups", `{"name":"g-a","nAmE":"g-payments"}`, domain.GroupResource("g-payments"),
			func(b string) (string, error) {
				v, err := decodeBody[CreateGroupRequest](strings.NewReader(b))
				return v.Name, err
			}},
		{"/v1/clients/c1/verify", `{"topic":"team-a-x","TOPIC":"payments","messageId":"m"}`, domain.TopicResource("payments"),
			func(b string) (string, error) {
				v, err := decodeBody[VerifyMessageRequest](strings.NewReader(b))
				return v.Topic, err
			}},
	} {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1"+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		got := adminAccess(r, netip.MustParseAddr("127.0.0.1"))
		if len(got) != 1 || got[0].Resource != tc.want {
			t.Errorf("%s %s: authorized %+v, want %v", tc.path, tc.body, got, tc.want)
		}
		name, err := tc.decoded(tc.body)
		if err != nil || name != tc.want.Name {
			t.Errorf("%s %s: the handler decodes %q (%v), the test expects %q", tc.path, tc.body, name, err, tc.want.Name)
		}
	}
}
