// Command exfilwatch is a host network sensor for MITRE ATT&CK analytic
// AN0425: it decodes HTTP and FTP uploads from live traffic or saved captures.
// This file only wires flags to the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries an exit code without printing anything more: the
// command already logged the one-line reasons.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Usage and setup errors: one line, no stack trace.
	fmt.Fprintf(os.Stderr, "exfilwatch: %s\n", strings.TrimSpace(err.Error()))
	return 2
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "exfilwatch",
		Usage: "flag non-browser processes that upload local data over HTTP or FTP (MITRE ATT&CK AN0425)",
		Description: "exfilwatch decodes HTTP/1.x and FTP (control and data channels) on any port, after TCP\n" +
			"reassembly, and writes one JSON event per HTTP transaction, FTP command, FTP data transfer\n" +
			"and connection. Events use Elastic Common Schema names; see docs/events.md.",
		Version:              version,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Suggest:              true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:  "log-level",
				Value: "info",
				Usage: "minimum level of log lines written to stderr: debug, info, warn, error",
			},
			&cli.StringFlag{
				Name:  "log-format",
				Value: "console",
				Usage: "log line format on stderr: console (human-readable) or json (one object per line)",
			},
		},
		Before: func(c *cli.Context) error {
			return setupLogging(c.String("log-level"), c.String("log-format"))
		},
		Commands: []*cli.Command{
			replayCommand(),
			baselineCommand(),
			runCommand(),
			checkConfigCommand(),
			doctorCommand(),
			{
				Name:  "version",
				Usage: "print the version and exit",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "exfilwatch %s\n", version)
					return nil
				},
			},
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() reports errors
	}
}

func setupLogging(level, format string) error {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	zerolog.SetGlobalLevel(lvl)
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	switch format {
	case "console":
		logger = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000", NoColor: !isTerminal(os.Stderr)}).With().Timestamp().Logger()
	case "json":
		logger = zerolog.New(os.Stderr).With().Timestamp().Logger()
	default:
		return fmt.Errorf("--log-format %q: want console or json", format)
	}
	logFormat = format
	return nil
}

var (
	logger    = zerolog.New(os.Stderr).With().Timestamp().Logger()
	logFormat = "console"
)

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
