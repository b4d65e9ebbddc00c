package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

var logLevel, logFormat string

func addLogFlags(fs *pflag.FlagSet) {
	fs.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "auto", "log format: json, console, or auto (console when stderr is a terminal)")
}

// newLogger builds the process logger from the log flags.
func newLogger() (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(logLevel)
	if err != nil || logLevel == "" {
		return zerolog.Nop(), usagef("--log-level: %q is not a level (trace, debug, info, warn, error)", logLevel)
	}
	var w io.Writer = os.Stderr
	switch logFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339}
	case "auto":
		if term.IsTerminal(int(os.Stderr.Fd())) {
			w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339}
		}
	default:
		return zerolog.Nop(), usagef("--log-format: %q: want json, console or auto", logFormat)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func printf(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }

// lag renders a millisecond lag for tables.
func lag(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d < 0 {
		return "-" + (-d).Round(time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
