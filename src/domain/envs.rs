//! The set of valid environment ids (`--envs 1-100` or `1,3,7-9`).

use std::fmt;

/// Valid environment ids, as sorted, non-overlapping inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSet {
    ranges: Vec<(u32, u32)>,
}

impl EnvSet {
    /// Parses `1-100`, `1,3,7-9`. Ids are 1 to 1,000,000.
    pub fn parse(s: &str) -> Result<EnvSet, String> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!("empty item in {s:?}"));
            }
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(part)?;
                    (n, n)
                }
            };
            if a > b {
                return Err(format!("range {part} runs backwards"));
            }
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Ok(EnvSet { ranges: merged })
    }

    /// True when `id` is a valid environment.
    pub fn contains(&self, id: u32) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= id && id <= b)
    }

    /// Every valid id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    /// How many ids there are.
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|&(a, b)| (b - a + 1) as usize).sum()
    }

    /// Never true for a parsed set; here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

fn num(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not an environment id (1 to 1000000)")),
    }
}

impl fmt::Display for EnvSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_lists() {
        let s = EnvSet::parse("1,3,7-9").expect("valid");
        assert!(s.contains(1) && s.contains(3) && s.contains(8));
        assert!(!s.contains(2) && !s.contains(10) && !s.contains(0));
        assert_eq!(s.len(), 5);
        assert_eq!(s.to_string(), "1,3,7-9");
        assert_eq!(EnvSet::parse("1-100").expect("valid").len(), 100);
        assert_eq!(EnvSet::parse("5-6,1-5").expect("valid").to_string(), "1-6");
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "0", "a", "3-1", "1,,2", "1-x", "-1"] {
            assert!(EnvSet::parse(bad).is_err(), "{bad}");
        }
    }
}
