package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/config"
)

// newTokenCmd makes and hashes bearer tokens for http.tokens.
func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Make bearer tokens for the HTTP API (http.tokens)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "new",
		Short: "Print a fresh random token and the sha256 line that configures it",
		Long: `Print a fresh token (32 random bytes, base64url) on the first line and, on
the second, its sha256 for http.tokens[].sha256 in the configuration. The
token itself goes to the client only (DRIFTWATCH_TOKEN, --token-file, or a
file or variable named by http.tokens[].file or env); driftwatch keeps
its hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := newToken()
			if err != nil {
				return err
			}
			printf(os.Stdout, "%s\nsha256: %s\n", token, tokenHash(token))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Print the sha256 line of a token read from standard input",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			token := strings.TrimSpace(line)
			if token == "" {
				if err != nil {
					return fmt.Errorf("read the token from standard input: %w", err)
				}
				return usagef("no token on standard input")
			}
			if len(token) < config.MinTokenLength {
				return usagef("a token has at least %d characters", config.MinTokenLength)
			}
			printf(os.Stdout, "sha256: %s\n", tokenHash(token))
			return nil
		},
	})
	return cmd
}

// newToken is 32 bytes from the system's random source, base64url without
// padding (43 characters, valid in an Authorization header as it is).
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func tokenHash(token string) string {
	h := config.HashToken(token)
	return hex.EncodeToString(h[:])
}
