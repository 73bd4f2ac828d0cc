package cluster

import "github.com/rmqproxy/rmqproxy/adapters/remoting"

// The brokers send some requests to this proxy as the client of its
// clients' groups (GET_CONSUMER_RUNNING_INFO, CONSUME_MESSAGE_DIRECTLY);
// their handlers read and answer them alike.

// clientRequest decodes into h the header of a request a broker sent to one
// of its clients and checks that it is meant for this proxy: *id is h's
// client id field. A non-nil result is the error answer to send back.
func (b *Broker) clientRequest(req *remoting.Command, h remoting.Header, id *string) *remoting.Command {
	if err := h.DecodeFields(req.Fields); err != nil {
		return remoting.NewResponse(req, remoting.ResponseSystemError, "cannot read the request: "+err.Error())
	}
	if *id != b.id {
		return remoting.NewResponse(req, remoting.ResponseSystemError, "this proxy is client "+b.id+", not "+*id)
	}
	return nil
}

// jsonAnswer is the answer to req carrying body as JSON, or the error
// answer when body cannot be encoded (ok false).
func jsonAnswer(req *remoting.Command, body any) (resp *remoting.Command, ok bool) {
	data, err := remoting.EncodeJSONBody(body)
	if err != nil {
		return remoting.NewResponse(req, remoting.ResponseSystemError, "cannot encode the answer: "+err.Error()), false
	}
	resp = remoting.NewResponse(req, remoting.ResponseSuccess, "")
	resp.Body = data
	return resp, true
}
