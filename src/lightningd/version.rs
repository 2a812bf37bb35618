//! Which lightningd releases the plugin runs on: `getinfo`'s `version` read, and the range
//! checked, so an unsupported lightningd is told at start (the plugin disables itself in its
//! `init` answer) instead of failing later in some call.

use std::fmt;

/// A lightningd release, `vMAJOR.MINOR[.PATCH]` (CLN numbers releases `YY.MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{:02}.{}", self.major, self.minor, self.patch)
    }
}

/// The oldest release the plugin is tested on: v25.02.2 is the oldest built and run here, and
/// the real-lightningd suite passes on it (what only v26.06 has, `xpay-user-layer`, skips there).
pub const OLDEST_SUPPORTED: Version = Version {
    major: 25,
    minor: 2,
    patch: 0,
};

/// Reads `getinfo`'s `version`: `v26.06.6`, `v26.06`, `v25.09.1-modded`, `v26.06rc2`,
/// `v26.06.6-12-gabcdef` (a build between tags). `None` when it has no `MAJOR.MINOR`.
pub fn parse(version: &str) -> Option<Version> {
    let v = version.trim().trim_start_matches('v');
    let mut nums = v.split(|c: char| !c.is_ascii_digit());
    let major = nums.next()?.parse().ok()?;
    // The separator after the major must be a dot.
    let rest = v.get(v.find('.')? + 1..)?;
    let minor_text: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let minor = minor_text.parse().ok()?;
    let after_minor = &rest[minor_text.len()..];
    let patch = after_minor
        .strip_prefix('.')
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Some(Version {
        major,
        minor,
        patch,
    })
}

/// Whether the plugin runs on lightningd `version` (as `getinfo` wrote it): `Err` says why
/// not, in one line for the log.
pub fn check(version: &str) -> Result<Version, String> {
    let Some(v) = parse(version) else {
        return Err(format!(
            "cannot read lightningd's version {version:?}; cln-rebalance needs Core Lightning {OLDEST_SUPPORTED} or newer"
        ));
    };
    if v < OLDEST_SUPPORTED {
        return Err(format!(
            "lightningd {version} is older than {OLDEST_SUPPORTED}, the oldest release cln-rebalance supports: \
             upgrade Core Lightning to use it"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn reads_the_forms_lightningd_writes() {
        assert_eq!(parse("v26.06.6"), Some(v(26, 6, 6)));
        assert_eq!(parse("v26.06"), Some(v(26, 6, 0)));
        assert_eq!(parse("v25.09.1-modded"), Some(v(25, 9, 1)));
        assert_eq!(parse("v26.06rc2"), Some(v(26, 6, 0)));
        assert_eq!(parse("v26.06.6-12-gabcdef"), Some(v(26, 6, 6)));
        assert_eq!(parse("26.06.1"), Some(v(26, 6, 1)));
        assert_eq!(parse("v24.11.2"), Some(v(24, 11, 2)));
        for bad in ["", "v", "vx.y", "v26", "unknown", "v.06"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_range_is_checked() {
        assert!(check("v26.06.6").is_ok());
        assert!(check("v25.02").is_ok());
        assert!(check("v25.05.1").is_ok());
        let e = check("v24.11.2").unwrap_err();
        assert!(e.contains("older than v25.02.0"), "{e}");
        assert!(check("garbage").unwrap_err().contains("cannot read"));
        assert!(v(25, 12, 0) > v(25, 9, 9));
        assert_eq!(v(25, 9, 0).to_string(), "v25.09.0");
    }
}
