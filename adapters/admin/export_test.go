package admin

import (
	"io"
	"time"
)

// DecodeCreateGroupRequest exposes the strict decoder to the black-box
// fuzz test.
func DecodeCreateGroupRequest(body io.Reader) (CreateGroupRequest, error) {
	return decodeBody[CreateGroupRequest](body)
}

// AdminAccess exposes the mapping of admin calls to accesses.
var AdminAccess = adminAccess

// SetNonceLimit gives s a nonce memory of at most limit nonces.
func SetNonceLimit(s *Server, limit int) {
	s.nonces = newNonceMemory(limit, adminClockSkew, time.Now)
}

// SetCertificateSettle makes s wait up to d for a changed certificate and
// key that do not load to settle; call it before Start.
func SetCertificateSettle(s *Server, d time.Duration) {
	s.certs.SetSettle(d)
}
