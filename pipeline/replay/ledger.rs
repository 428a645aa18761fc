//! What a replay id has done in one dead-letter partition: the offsets of the records it sent
//! (or deliberately skipped with `--skip`), as merged half-open ranges, written to the ledger
//! topic as `a-b,c-d`. A record a filter did not select is in no range, so it stays pending
//! for the dead-letter depth and for the next replay. (The ledger once kept one "next offset"
//! per partition, so a replay whose filter matched nothing moved it past every record, and the
//! depth alert resolved with nothing fixed.) A value written in that older form, a single
//! number `N`, reads as `0-N`.

/// Merged, sorted, half-open offset ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(i64, i64)>);

impl Ranges {
    /// Reads a ledger value; None when it is neither form.
    pub fn parse(s: &str) -> Option<Ranges> {
        let s = s.trim();
        if s.is_empty() {
            return Some(Ranges::default());
        }
        if let Ok(n) = s.parse::<i64>() {
            return Some(if n > 0 {
                Ranges(vec![(0, n)])
            } else {
                Ranges::default()
            });
        }
        let mut out = Ranges::default();
        for part in s.split(',') {
            let (a, b) = part.split_once('-')?;
            let (a, b) = (a.parse::<i64>().ok()?, b.parse::<i64>().ok()?);
            if a < b {
                out.add(a, b);
            }
        }
        Some(out)
    }

    /// The ledger value.
    pub fn format(&self) -> String {
        self.0
            .iter()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn contains(&self, o: i64) -> bool {
        let i = self.0.partition_point(|&(_, b)| b <= o);
        self.0.get(i).is_some_and(|&(a, _)| a <= o)
    }

    /// Adds `[a, b)`, merging with what it touches.
    pub fn add(&mut self, a: i64, b: i64) {
        if a >= b {
            return;
        }
        let (mut a, mut b) = (a, b);
        let start = self.0.partition_point(|&(_, e)| e < a);
        let mut end = start;
        while end < self.0.len() && self.0[end].0 <= b {
            a = a.min(self.0[end].0);
            b = b.max(self.0[end].1);
            end += 1;
        }
        self.0.splice(start..end, [(a, b)]);
    }

    pub fn insert(&mut self, o: i64) {
        self.add(o, o + 1);
    }

    pub fn union(&mut self, other: &Ranges) {
        for &(a, b) in &other.0 {
            self.add(a, b);
        }
    }

    /// The first offset at or after `from` in no range.
    pub fn first_gap(&self, from: i64) -> i64 {
        let i = self.0.partition_point(|&(_, b)| b <= from);
        match self.0.get(i) {
            Some(&(a, b)) if a <= from => b,
            _ => from,
        }
    }

    /// How many offsets of `[a, b)` are in a range (every offset in a range is a record: only
    /// records are ever added).
    pub fn covered(&self, a: i64, b: i64) -> i64 {
        self.0
            .iter()
            .map(|&(x, y)| (y.min(b) - x.max(a)).max(0))
            .sum()
    }

    /// How many of `offsets` (ascending) are in a range.
    pub fn count_in(&self, offsets: &[i64]) -> usize {
        self.0
            .iter()
            .map(|&(a, b)| {
                offsets.partition_point(|&o| o < b) - offsets.partition_point(|&o| o < a)
            })
            .sum()
    }

    /// The offsets of `offsets` (ascending) in no range.
    pub fn pending<'a>(&'a self, offsets: &'a [i64]) -> impl Iterator<Item = i64> + 'a {
        offsets.iter().copied().filter(|&o| !self.contains(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_round_trip_and_read_the_older_form() {
        let mut r = Ranges::default();
        for o in [5, 3, 4, 10, 12, 11, 0] {
            r.insert(o);
        }
        assert_eq!(r.format(), "0-1,3-6,10-13");
        assert_eq!(Ranges::parse(&r.format()), Some(r.clone()));
        assert!(r.contains(4) && !r.contains(6) && !r.contains(1));
        assert_eq!(r.first_gap(3), 6);
        assert_eq!(r.first_gap(7), 7);
        assert_eq!(r.count_in(&[0, 1, 2, 3, 6, 10, 12, 13]), 4);
        assert_eq!(r.covered(0, 11), 5);
        assert_eq!(r.covered(4, 5), 1);
        assert_eq!(
            r.pending(&[0, 1, 2, 3, 6]).collect::<Vec<_>>(),
            vec![1, 2, 6]
        );
        r.add(1, 10);
        assert_eq!(r.format(), "0-13");
        assert_eq!(Ranges::parse("19"), Some(Ranges(vec![(0, 19)])));
        assert_eq!(Ranges::parse("0"), Some(Ranges::default()));
        assert_eq!(Ranges::parse("x"), None);
        let mut u = Ranges::parse("0-2").unwrap();
        u.union(&Ranges::parse("2-4,8-9").unwrap());
        assert_eq!(u.format(), "0-4,8-9");
    }
}
