package detect

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"exfilwatch/attribution"
	"exfilwatch/config"
)

// CredentialClasses are the built-in sensitive classes whose reads weigh
// more (reason credential_class).
var CredentialClasses = map[string]bool{
	"keychains": true, "browser_stores": true, "password_stores": true, "ssh": true, "gpg": true,
	"cloud_credentials": true, "dev_tokens": true,
}

// OptionsFromConfig builds the rule's options from exfilwatch.yaml for the
// platform the host data comes from (goos). Browser identities the
// classifier refuses are logged to log and left out.
func OptionsFromConfig(cfg *config.Config, goos string, log zerolog.Logger) (Options, error) {
	opt := Options{GOOS: goos, CredentialClasses: CredentialClasses, Log: log}
	m, err := config.NewPathMatcherFor(cfg.SensitiveClasses(goos), goos)
	if err != nil {
		return opt, fmt.Errorf("sensitive classes: %w", err)
	}
	opt.Sensitive = m
	if cfg.Rule.Window > 0 {
		opt.Window = time.Duration(cfg.Rule.Window)
	}
	opt.MinUploadBytes = int64(cfg.Rule.MinUploadBytes)
	opt.BulkUploadBytes = int64(cfg.Rule.BulkUploadBytes)
	opt.Browsers = browserClassifier(cfg, log)
	allow, err := NewAllowlist(cfg.Allowlist, goos)
	if err != nil {
		return opt, fmt.Errorf("allowlist: %w", err)
	}
	if allow.Len() > 0 {
		opt.Allow = allow
	}
	return opt, nil
}

// browserClassifier uses attribution's table for the defaults (it carries
// the platform flags and path prefixes the config form does not) and adds
// the configured browsers.
func browserClassifier(cfg *config.Config, log zerolog.Logger) *attribution.BrowserClassifier {
	var mac []attribution.BrowserRule
	var linux []string
	if cfg.UseDefaultBrowsers() {
		mac = attribution.DefaultMacBrowsers()
		linux = attribution.DefaultLinuxBrowsers()
	}
	b := attribution.NewBrowserClassifier(mac, linux)
	for _, id := range cfg.Browsers.Add {
		if id.SigningID != "" {
			if err := b.AddRule(attribution.BrowserRule{Name: id.Name, TeamID: id.TeamID, SigningID: id.SigningID}); err != nil {
				log.Warn().Err(err).Msg("browser identity ignored")
			}
		}
		if id.Path != "" {
			if err := b.AddLinuxPath(id.Path); err != nil {
				log.Warn().Err(err).Msg("browser path ignored")
			}
		}
	}
	return b
}
