//! Execution segments as k6 defines them: a half-open range `(from, to]` of
//! rationals in [0, 1], and a sequence of them without gaps from 0 to 1. The
//! sequence stripes the integers: in every block of `lcd` consecutive
//! indices, each segment owns exactly its length's share, spread out, the
//! biggest segments choosing first. A shard owns the VUs, iterations and
//! arrivals whose global index falls in its stripe, so the shards of one
//! sequence cover every index exactly once whatever the value being split.

use std::fmt;

/// A non-negative rational in lowest terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub num: u64,
    pub den: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    pub fn new(num: u64, den: u64) -> Result<Ratio, String> {
        if den == 0 {
            return Err(format!("{num}/0 divides by zero"));
        }
        let g = gcd(num, den).max(1);
        Ok(Ratio {
            num: num / g,
            den: den / g,
        })
    }

    /// `1/3`, `0.25`, `25%`, `1`: k6's spellings of a segment boundary.
    pub fn parse(s: &str) -> Result<Ratio, String> {
        let t = s.trim();
        let bad =
            || format!("`{s}` is not a fraction (1/3), a decimal (0.25) or a percentage (25%)");
        let r = if let Some(p) = t.strip_suffix('%') {
            let d = Ratio::parse_decimal(p.trim()).ok_or_else(bad)?;
            Ratio::new(d.num, d.den.checked_mul(100).ok_or_else(bad)?)?
        } else if let Some((n, d)) = t.split_once('/') {
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            let d: u64 = d.trim().parse().map_err(|_| bad())?;
            Ratio::new(n, d)?
        } else {
            Ratio::parse_decimal(t).ok_or_else(bad)?
        };
        if r.cmp_to(Ratio::ONE).is_gt() {
            return Err(format!(
                "`{s}` is more than 1: boundaries lie between 0 and 1"
            ));
        }
        Ok(r)
    }

    fn parse_decimal(t: &str) -> Option<Ratio> {
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty()
            || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
            || frac.len() > 12
        {
            return None;
        }
        let den = 10u64.pow(frac.len() as u32);
        let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        Ratio::new(int.checked_mul(den)?.checked_add(frac)?, den).ok()
    }

    pub fn cmp_to(self, o: Ratio) -> std::cmp::Ordering {
        (self.num as u128 * o.den as u128).cmp(&(o.num as u128 * self.den as u128))
    }

    fn minus(self, o: Ratio) -> Ratio {
        let den = self.den / gcd(self.den, o.den) * o.den;
        let a = self.num * (den / self.den);
        let b = o.num * (den / o.den);
        Ratio::new(a - b, den).expect("non-zero denominator")
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// One shard's place in a sequence: which of its segments, and the stripe
/// of indices that segment owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stripe {
    /// The sequence's boundaries, 0 first and 1 last.
    pub bounds: Vec<Ratio>,
    /// Which segment of the sequence this is (0-based).
    pub index: usize,
    /// Every block of `lcd` indices repeats the same ownership.
    pub lcd: u64,
    /// The offsets within a block that this segment owns, ascending.
    pub owned: Vec<u64>,
}

impl Stripe {
    /// The whole test: one segment owning every index.
    pub fn whole() -> Stripe {
        Stripe {
            bounds: vec![Ratio::ZERO, Ratio::ONE],
            index: 0,
            lcd: 1,
            owned: vec![0],
        }
    }

    /// Shard `index` (0-based) of `count` equal shards.
    pub fn equal(index: usize, count: usize) -> Result<Stripe, String> {
        if count == 0 {
            return Err("a run is split into at least 1 shard".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index}/{count} does not exist: shards are numbered from 0 (0/{count} to {}/{count})",
                count - 1
            ));
        }
        let bounds = (0..=count as u64)
            .map(|i| Ratio::new(i, count as u64))
            .collect::<Result<Vec<_>, _>>()?;
        Stripe::of(bounds, index)
    }

    /// Segment `index` of the sequence with these boundaries (from 0 to 1,
    /// strictly rising).
    pub fn of(bounds: Vec<Ratio>, index: usize) -> Result<Stripe, String> {
        if bounds.len() < 2 || bounds[0] != Ratio::ZERO || *bounds.last().unwrap() != Ratio::ONE {
            return Err("a segment sequence runs from 0 to 1 (e.g. 0,1/3,2/3,1)".into());
        }
        if let Some(w) = bounds.windows(2).find(|w| !w[0].cmp_to(w[1]).is_lt()) {
            return Err(format!(
                "the sequence's boundaries must rise: {} is followed by {}",
                w[0], w[1]
            ));
        }
        if index + 1 >= bounds.len() {
            return Err(format!("the sequence has {} segments", bounds.len() - 1));
        }
        let lengths: Vec<Ratio> = bounds.windows(2).map(|w| w[1].minus(w[0])).collect();
        let mut lcd = 1u64;
        for l in &lengths {
            lcd = lcd / gcd(lcd, l.den) * l.den;
            if lcd > 1_000_000 {
                return Err("the sequence's segments need blocks of more than 1,000,000 indices: use simpler fractions".into());
            }
        }
        // Each segment's share of a block, biggest first (ties keep their order).
        let share: Vec<u64> = lengths.iter().map(|l| l.num * (lcd / l.den)).collect();
        let mut order: Vec<usize> = (0..share.len()).collect();
        order.sort_by(|a, b| share[*b].cmp(&share[*a]));
        let mut taken = vec![0u64; share.len()];
        let mut owned = Vec::new();
        for i in 0..lcd {
            // Index i goes to the first segment (in that order) that has
            // fallen behind its even spacing: i >= taken * lcd / share.
            let s = order
                .iter()
                .copied()
                .find(|&s| {
                    taken[s] < share[s]
                        && i as u128 * share[s] as u128 >= taken[s] as u128 * lcd as u128
                })
                .expect("the shares fill the block");
            taken[s] += 1;
            if s == index {
                owned.push(i);
            }
        }
        Ok(Stripe {
            bounds,
            index,
            lcd,
            owned,
        })
    }

    /// k6's `--execution-segment` and `--execution-segment-sequence`. Without a
    /// sequence, the segment's own boundaries (and 0, 1) make one.
    pub fn parse(segment: &str, sequence: Option<&str>) -> Result<Stripe, String> {
        let (from, to) = match segment.split_once(':') {
            Some((a, b)) => (Ratio::parse(a)?, Ratio::parse(b)?),
            None => (Ratio::ZERO, Ratio::parse(segment)?),
        };
        if !from.cmp_to(to).is_lt() {
            return Err(format!(
                "segment `{segment}` is empty: its start must be below its end"
            ));
        }
        let bounds = match sequence {
            Some(seq) => seq
                .split(',')
                .map(Ratio::parse)
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let mut b = vec![Ratio::ZERO];
                for r in [from, to, Ratio::ONE] {
                    if *b.last().unwrap() != r {
                        b.push(r);
                    }
                }
                b
            }
        };
        let index = bounds
            .windows(2)
            .position(|w| w[0] == from && w[1] == to)
            .ok_or_else(|| {
                format!(
                    "segment {from}:{to} is not one of the sequence's ({})",
                    bounds
                        .iter()
                        .map(Ratio::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })?;
        Stripe::of(bounds, index)
    }

    pub fn is_whole(&self) -> bool {
        self.bounds.len() == 2
    }

    /// How many shards the sequence has.
    pub fn count(&self) -> usize {
        self.bounds.len() - 1
    }

    /// k6's spelling of this segment and of its sequence.
    pub fn k6_flags(&self) -> (String, String) {
        let seg = format!(
            "{}:{}",
            self.bounds[self.index],
            self.bounds[self.index + 1]
        );
        let seq = self
            .bounds
            .iter()
            .map(Ratio::to_string)
            .collect::<Vec<_>>()
            .join(",");
        (seg, seq)
    }

    /// How many of the indices 0..n this shard owns: its share of `n`.
    pub fn count_below(&self, n: u64) -> u64 {
        let rest = n % self.lcd;
        (n / self.lcd) * self.owned.len() as u64
            + self.owned.iter().take_while(|o| **o < rest).count() as u64
    }

    /// The global index of this shard's k-th own index.
    pub fn nth(&self, k: u64) -> u64 {
        let m = self.owned.len() as u64;
        (k / m) * self.lcd + self.owned[(k % m) as usize]
    }

    pub fn owns(&self, g: u64) -> bool {
        self.owned.binary_search(&(g % self.lcd)).is_ok()
    }
}

impl fmt::Display for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seg, seq) = self.k6_flags();
        write!(f, "segment {seg} of {seq}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6s_published_fifty_twenty_five_twenty_five_table() {
        let seq = "0,1/2,3/4,1";
        let s: Vec<Stripe> = ["0:1/2", "1/2:3/4", "3/4:1"]
            .iter()
            .map(|g| Stripe::parse(g, Some(seq)).unwrap())
            .collect();
        let table: Vec<[u64; 3]> = (1..=4)
            .map(|v| {
                [
                    s[0].count_below(v),
                    s[1].count_below(v),
                    s[2].count_below(v),
                ]
            })
            .collect();
        assert_eq!(table, vec![[1, 0, 0], [1, 1, 0], [2, 1, 0], [2, 1, 1]]);
        // The iterators of k6's example: 0 2 4 ..., 1 5 9 ..., 3 7 11 ...
        assert_eq!((0..3).map(|k| s[0].nth(k)).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!((0..3).map(|k| s[1].nth(k)).collect::<Vec<_>>(), [1, 5, 9]);
        assert_eq!((0..3).map(|k| s[2].nth(k)).collect::<Vec<_>>(), [3, 7, 11]);
    }

    #[test]
    fn shares_sum_exactly_and_stripes_are_disjoint_and_complete() {
        for n in 1..=8usize {
            let shards: Vec<Stripe> = (0..n).map(|i| Stripe::equal(i, n).unwrap()).collect();
            for v in 0..=1000u64 {
                let sum: u64 = shards.iter().map(|s| s.count_below(v)).sum();
                assert_eq!(sum, v, "{n} shards, value {v}");
            }
            // Every index below 1000 is owned by exactly one shard, and each
            // shard's own list (nth) is exactly the indices it owns, in order.
            for g in 0..1000u64 {
                assert_eq!(
                    shards.iter().filter(|s| s.owns(g)).count(),
                    1,
                    "index {g} of {n}"
                );
            }
            for s in &shards {
                let mine: Vec<u64> = (0..1000).filter(|g| s.owns(*g)).collect();
                let listed: Vec<u64> = (0..s.count_below(1000)).map(|k| s.nth(k)).collect();
                assert_eq!(mine, listed);
            }
        }
    }

    #[test]
    fn uneven_sequences_also_add_up_and_never_shrink() {
        let seq = "0,0.2,25%,2/3,1";
        let shards: Vec<Stripe> = ["0:0.2", "0.2:25%", "25%:2/3", "2/3:1"]
            .iter()
            .map(|g| Stripe::parse(g, Some(seq)).unwrap())
            .collect();
        for v in 0..=1000u64 {
            assert_eq!(shards.iter().map(|s| s.count_below(v)).sum::<u64>(), v);
            for s in &shards {
                assert!(s.count_below(v + 1) >= s.count_below(v));
            }
        }
    }

    #[test]
    fn spellings_and_mistakes() {
        assert_eq!(Ratio::parse("25%").unwrap(), Ratio::new(1, 4).unwrap());
        assert_eq!(Ratio::parse("0.5").unwrap(), Ratio::new(1, 2).unwrap());
        assert_eq!(Ratio::parse("2/6").unwrap(), Ratio::new(1, 3).unwrap());
        // A segment alone makes its own sequence.
        let s = Stripe::parse("1/3:2/3", None).unwrap();
        assert_eq!(s.k6_flags(), ("1/3:2/3".into(), "0,1/3,2/3,1".into()));
        assert_eq!(Stripe::equal(1, 4).unwrap().k6_flags().0, "1/4:1/2");
        assert!(Stripe::equal(3, 3).unwrap_err().contains("numbered from 0"));
        assert!(Stripe::parse("2/3:1/3", None)
            .unwrap_err()
            .contains("empty"));
        assert!(Stripe::parse("0:1/3", Some("0,1/2,1"))
            .unwrap_err()
            .contains("not one of"));
        assert!(Ratio::parse("3/2").unwrap_err().contains("more than 1"));
        assert!(Ratio::parse("x").is_err());
        assert!(Stripe::whole().is_whole());
        assert_eq!(Stripe::whole().count_below(17), 17);
    }
}
