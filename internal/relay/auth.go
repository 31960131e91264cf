package relay

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"time"
)

type credential struct {
	id  string
	sum [sha256.Size]byte
}

// identify returns the identity whose credential is token, or "". It compares
// fixed-size digests against every credential, without stopping at a match,
// so timing reveals neither which identity matched nor how much of a guess
// was right.
func (s *Server) identify(token string) string {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.creds {
		eq := subtle.ConstantTimeCompare(sum[:], s.creds[i].sum[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return ""
	}
	return s.creds[found].id
}

// hello authenticates a new connection and returns its identity, or "" after
// refusing it.
func (s *Server) hello(c net.Conn, r *bufio.Reader, so *socket) string {
	peer := peerCred(c)
	s.auditNoisy("connect", "", "", peer)
	c.SetReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	b, err := readFrame(r, helloMaxFrame)
	if err != nil {
		s.auditNoisy("auth_failed", "", "", fmt.Sprintf("no hello (%v); %s", err, peer))
		return ""
	}
	req, err := decodeRequest(b)
	if err == nil && req.Type != "hello" {
		err = fmt.Errorf("first frame is %s, not hello", req.Type)
	}
	if err != nil {
		s.auditNoisy("auth_failed", "", "", fmt.Sprintf("bad hello (%v); %s", err, peer))
		s.write(c, errReply(CodeBadRequest, "bad hello: %v", err))
		return ""
	}
	id := s.identify(req.Token)
	if id == "" {
		s.auditNoisy("auth_failed", "", "", "token matches no credential; "+peer)
		s.write(c, errReply(CodeUnauthorized, "the token matches no identity in run %s: use the credential file the runner gave this agent", s.cfg.Run))
		return ""
	}
	// The socket is a second check on identity: each is mounted into its
	// own agent's container only, so another's credential showing up here
	// means it leaked, or the mounts are wrong.
	if id != so.id {
		s.auditNoisy("wrong_socket", id, so.id, fmt.Sprintf("refused: the credential of %s was presented on the socket of %s; %s", id, so.id, peer))
		s.write(c, errReply(CodeUnauthorized, "this socket is %s's, and only %s may log in on it: connect on your own socket", so.id, so.id))
		return ""
	}
	if !s.buckets[id].take(s.now(), s.cfg.RateLimit) {
		s.auditNoisy("rate_limited", id, "", "hello; "+peer)
		s.write(c, errReply(CodeRateLimited, "reconnecting too fast: back off and retry"))
		return ""
	}
	if !s.claim(id) {
		s.auditNoisy("deny", id, "", fmt.Sprintf("connection refused: %d already open; %s", maxConnsPerIdentity, peer))
		s.write(c, errReply(CodeTooManyConnections, "%s already has %d connections open: close some", id, maxConnsPerIdentity))
		return ""
	}
	s.audit("auth_ok", id, "", peer)
	if s.write(c, welcomeFrame{V: version, Type: "welcome", ID: id, Peers: s.peers[id], MaxMessage: s.cfg.MaxMessage, IdleAfter: s.idleAfter[id]}) != nil {
		s.unclaim(id)
		return ""
	}
	return id
}
