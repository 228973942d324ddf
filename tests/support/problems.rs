//! Asserting what `dingtail check` (or any command refusing a config) said: one stderr line
//! per problem, each naming its place (`rules.yaml:LINE:`) and what is wrong.

use super::env::Output;

impl Output {
    /// Asserts the config was refused (exit status 2) with exactly one stderr line per entry
    /// of `problems`, in order, each line holding every text of its entry (for example
    /// `["rules.yaml:4:", "rule 'a', field 'where'"]`); shows all of stderr when not.
    pub fn assert_problems(&self, problems: &[&[&str]]) {
        assert_eq!(self.code, 2, "{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            problems.len(),
            "want {} problem lines:\n{}",
            problems.len(),
            self.stderr
        );
        for (line, wanted) in lines.iter().zip(problems) {
            for w in *wanted {
                assert!(line.contains(w), "no {w:?} in {line:?}:\n{}", self.stderr);
            }
        }
    }
}
