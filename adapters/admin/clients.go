package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

// ConnectedClient is a client as GET /v1/clients shows it.
type ConnectedClient struct {
	ClientID string `json:"clientId"`
	// Kind is producer or consumer (empty for a client that declared
	// neither); ClientType the type it declared (PRODUCER,
	// PUSH_CONSUMER, SIMPLE_CONSUMER, ...).
	Kind       string `json:"kind,omitempty"`
	ClientType string `json:"clientType"`
	Language   string `json:"language,omitempty"`
	Version    string `json:"version,omitempty"`
	// Group is a consumer's group.
	Group string `json:"group,omitempty"`
	// Topics are what a producer publishes to or a consumer subscribes to.
	Topics        []string `json:"topics"`
	RemoteAddress string   `json:"remoteAddress,omitempty"`
	// ConnectedSince is when this proxy first heard of the client.
	ConnectedSince time.Time `json:"connectedSince,omitzero"`
	LastSeen       time.Time `json:"lastSeen,omitzero"`
	// TelemetryStream says the client's command stream to this proxy is
	// open: stack and verify reach only such clients.
	TelemetryStream bool `json:"telemetryStream"`
}

// ClientList is the answer of GET /v1/clients.
type ClientList struct {
	Clients []ConnectedClient `json:"clients"`
}

// VerifyMessageRequest is the body of POST /v1/clients/{id}/verify.
type VerifyMessageRequest struct {
	Topic     string `json:"topic"`
	MessageID string `json:"messageId"`
}

// ClientAnswer is a client's answer to POST /v1/clients/{id}/stack or
// /verify: its status code (apache.rocketmq.v2.Code: OK,
// NOT_IMPLEMENTED, FAILED_TO_CONSUME_MESSAGE, ...) and, for stack, the
// thread stacks. The request succeeded when the client answered, whatever
// its code.
type ClientAnswer struct {
	ClientID   string `json:"clientId"`
	Nonce      string `json:"nonce"`
	Code       string `json:"code"`
	Message    string `json:"message,omitempty"`
	StackTrace string `json:"stackTrace,omitempty"`
	Topic      string `json:"topic,omitempty"`
	MessageID  string `json:"messageId,omitempty"`
}

func clientsDTO(cs []application.ClientInfo) ClientList {
	out := ClientList{Clients: make([]ConnectedClient, 0, len(cs))}
	for _, c := range cs {
		d := ConnectedClient{ClientID: c.ClientID, Kind: c.Kind(), ClientType: c.Type.String(), Language: c.Language, Version: c.Version,
			Group: c.Group, Topics: c.Topics, ConnectedSince: c.Since.UTC(), LastSeen: c.LastSeen.UTC(), TelemetryStream: c.Streaming}
		if d.Topics == nil {
			d.Topics = []string{}
		}
		if c.RemoteAddr.IsValid() {
			d.RemoteAddress = c.RemoteAddr.String()
		}
		out.Clients = append(out.Clients, d)
	}
	return out
}

func answerDTO(clientID string, r application.ClientReply) ClientAnswer {
	return ClientAnswer{ClientID: clientID, Nonce: r.Nonce, Code: r.Code, Message: r.Message, StackTrace: r.StackTrace}
}

// UseClientOps serves the client endpoints (/v1/clients) with ops; without
// it they answer NOT_IMPLEMENTED.
func (s *Server) UseClientOps(ops *application.ClientOps) {
	s.ops = ops
}

func (s *Server) clientOps() (*application.ClientOps, error) {
	if s.ops == nil {
		return nil, domain.Errorf(domain.ReasonNotImplemented, "this proxy does not serve client operations")
	}
	return s.ops, nil
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "group" && k != "topic" {
			return domain.Errorf(domain.ReasonBadRequest, "unknown query parameter %q; /v1/clients takes group and topic", truncate(k))
		}
	}
	ops, err := s.clientOps()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, clientsDTO(ops.Clients(application.ClientFilter{Group: q.Get("group"), Topic: q.Get("topic")})))
	return nil
}

func (s *Server) clientStack(w http.ResponseWriter, r *http.Request) error {
	if _, err := decodeRequest[struct{}](w, r); err != nil {
		return err
	}
	ops, err := s.clientOps()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	reply, err := ops.ThreadStack(r.Context(), id)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "client thread stack requested", "client_id", id, "code", reply.Code)
	writeJSON(w, http.StatusOK, answerDTO(id, reply))
	return nil
}

func (s *Server) verifyMessage(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest[VerifyMessageRequest](w, r)
	if err != nil {
		return err
	}
	ops, err := s.clientOps()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	reply, err := ops.VerifyMessage(r.Context(), id, req.Topic, req.MessageID)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "client verified a message", "client_id", id, "topic", req.Topic, "message_id", req.MessageID, "code", reply.Code)
	a := answerDTO(id, reply)
	a.Topic, a.MessageID = req.Topic, req.MessageID
	writeJSON(w, http.StatusOK, a)
	return nil
}

func clientPath(id string) string { return "/v1/clients/" + url.PathEscape(id) }

// Clients lists the clients connected to the proxy that match the filter
// (empty fields match all), sorted by client id.
func (c *Client) Clients(ctx context.Context, f application.ClientFilter) (ClientList, error) {
	q := url.Values{}
	if f.Group != "" {
		q.Set("group", f.Group)
	}
	if f.Topic != "" {
		q.Set("topic", f.Topic)
	}
	path := "/v1/clients"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ClientList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// ClientStack asks a client for its thread stacks.
func (c *Client) ClientStack(ctx context.Context, clientID string) (ClientAnswer, error) {
	var out ClientAnswer
	err := c.do(ctx, http.MethodPost, clientPath(clientID)+"/stack", struct{}{}, &out)
	return out, err
}

// VerifyMessage asks a consumer to consume a stored message as a check.
func (c *Client) VerifyMessage(ctx context.Context, clientID, topic, messageID string) (ClientAnswer, error) {
	var out ClientAnswer
	err := c.do(ctx, http.MethodPost, clientPath(clientID)+"/verify", VerifyMessageRequest{Topic: topic, MessageID: messageID}, &out)
	return out, err
}

// PrintClients writes clients as an aligned table for the CLI.
func PrintClients(w io.Writer, l ClientList) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CLIENT-ID\tKIND\tTYPE\tLANGUAGE\tVERSION\tGROUP\tTOPICS\tREMOTE-ADDRESS\tCONNECTED-SINCE\tLAST-SEEN\tSTREAM")
	for _, c := range l.Clients {
		stream := "open"
		if !c.TelemetryStream {
			stream = "none"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(c.ClientID, 0), cell(c.Kind, 0), cell(c.ClientType, 0), cell(c.Language, 0), cell(c.Version, 0),
			cell(c.Group, 0), cell(strings.Join(c.Topics, ","), 60), cell(c.RemoteAddress, 0), timeCell(c.ConnectedSince), timeCell(c.LastSeen), stream)
	}
	return tw.Flush()
}

// PrintClientAnswer writes a client's answer: the thread stacks as they
// are, or a verdict line.
func PrintClientAnswer(w io.Writer, a ClientAnswer) error {
	if a.StackTrace != "" {
		_, err := io.WriteString(w, strings.TrimRight(a.StackTrace, "\n")+"\n")
		return err
	}
	line := fmt.Sprintf("client %s answered %s", a.ClientID, a.Code)
	if a.MessageID != "" {
		line += fmt.Sprintf(" for message %s of topic %s", a.MessageID, a.Topic)
	}
	if a.Message != "" {
		line += ": " + a.Message
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
