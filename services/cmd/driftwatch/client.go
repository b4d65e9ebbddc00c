package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/driftwatch/driftwatch/services/api"
)

// apiClient talks to a running driftwatch's HTTP API. Every request made
// through its http.Client to its base origin carries the command's bearer
// token (apiAuth), whichever code path builds the request.
type apiClient struct {
	base string
	http *http.Client
	err  error // the token could not be read
}

// apiAuth is the --token and --token-file flags of every command that
// calls the HTTP API; DRIFTWATCH_TOKEN and DRIFTWATCH_TOKEN_FILE are their
// variables (applyEnv).
type apiAuth struct {
	token, tokenFile string
}

// addFlags adds --token and --token-file to a command's flags.
func (a *apiAuth) addFlags(f *pflag.FlagSet) {
	f.StringVar(&a.token, "token", "", "bearer token for the HTTP API when it has http.tokens (DRIFTWATCH_TOKEN; a flag shows in the process list: prefer the variable or --token-file)")
	f.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token for the HTTP API")
}

// bearer is the token to send ("" for none). A token given on the command
// line wins over one from a variable; --token and --token-file both given
// the same way is a usage error.
func (a *apiAuth) bearer() (string, error) {
	token, file := a.token, a.tokenFile
	if token != "" && file != "" {
		tokenFromEnv, fileFromEnv := os.Getenv("DRIFTWATCH_TOKEN") == token, os.Getenv("DRIFTWATCH_TOKEN_FILE") == file
		switch {
		case tokenFromEnv && !fileFromEnv:
			token = ""
		case fileFromEnv && !tokenFromEnv:
			file = ""
		default:
			return "", usagef("give --token or --token-file, not both")
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			return "", fmt.Errorf("--token-file: %s is empty", file)
		}
	}
	if token != "" {
		if _, ok := api.ParseBearer("Bearer " + token); !ok {
			return "", usagef("the token holds characters a bearer token cannot (driftwatch token new makes one)")
		}
	}
	return token, nil
}

// newAPIClient returns a client of the API at addr (--http: host:port or
// an http(s):// URL, read by apiBaseURL) sending auth's token, if any. A
// bad address or token is the client's err, returned by every request.
func newAPIClient(addr string, auth *apiAuth) *apiClient {
	base, err := apiBaseURL(addr)
	c := &apiClient{base: base, err: err}
	t := &bearerTransport{base: http.DefaultTransport, err: err}
	if auth != nil && c.err == nil {
		t.token, c.err = auth.bearer()
		t.err = c.err
	}
	if u, err := url.Parse(c.base); err == nil {
		t.origin = u.Scheme + "://" + u.Host
	}
	c.http = &http.Client{Timeout: 5 * time.Minute, Transport: t}
	return c
}

// bearerTransport adds "Authorization: Bearer <token>" to requests to the
// API's own origin only: a redirect elsewhere never carries the token.
type bearerTransport struct {
	base   http.RoundTripper
	origin string
	token  string
	err    error
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, t.err
	}
	if t.token != "" && req.URL.Scheme+"://"+req.URL.Host == t.origin {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.base.RoundTrip(req)
}

// do sends a request and decodes a 2xx JSON reply into out; an error reply
// becomes an *apiError carrying the API's message.
func (c *apiClient) do(method, path string, body io.Reader, out any) error {
	if c.err != nil {
		return c.err
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	if body != nil && strings.Contains(path, "format=csv") {
		req.Header.Set("Content-Type", "text/csv")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("driftwatch API at %s: %w (is driftwatch serve running? see --http)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{status: resp.StatusCode}
		if json.Unmarshal(data, &e.FilterErrorBody) == nil && e.FilterErrorBody.Error != "" {
			return e
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// connectJS connects to NATS for a client command, with the command's
// connection flags (natsFlags), and opens JetStream.
func connectJS(n *natsFlags, name string) (jetstream.JetStream, *nats.Conn, error) {
	nc, err := n.connect(name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc, nil
}

// printJSON writes v to stdout as indented JSON.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
