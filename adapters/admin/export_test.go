package admin

import "io"

// DecodeCreateGroupRequest exposes the strict decoder to the black-box
// fuzz test.
func DecodeCreateGroupRequest(body io.Reader) (CreateGroupRequest, error) {
	return decodeBody[CreateGroupRequest](body)
}

// AdminAccess exposes the mapping of admin calls to accesses.
var AdminAccess = adminAccess
