//! A small spreadsheet served over DDE (spec 07-S12), as classic
//! spreadsheets serve their cells: the topic is the sheet, each cell is an
//! item named `R<row>C<col>` (`R1C1`), its value is text (`CF_TEXT`).
//!
//! A cell holds a number, text, or a formula: `=` and an expression of
//! numbers, cells, `+ - * /`, parentheses and `SUM(R1C1:R3C1)`. A poke sets
//! a cell; every cell whose value changed because of it (the cell and the
//! formulas over it) is published to its advise loops, in row-column order.
//! An execute of `R2C1=7` sets a cell too; `clear` empties the sheet.
//!
//! ```
//! use switchboard::dde::sheet::Sheet;
//!
//! let mut s = Sheet::default();
//! s.set("R1C1", "2")?;
//! let changed = s.set("R3C1", "=R1C1*10+R2C1")?;
//! assert_eq!(changed, ["R3C1"]);
//! assert_eq!(s.set("R2C1", "1")?, ["R2C1", "R3C1"]);
//! assert_eq!(s.value("r3c1").as_deref(), Some("21"));
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::{fold, Dde, Event, Reply};
use crate::error::{Error, Result};

/// Largest row or column.
pub const MAX_INDEX: u32 = 65_536;
/// Deepest formula nesting (over cells and parentheses) evaluated.
const MAX_DEPTH: usize = 64;

/// A sheet of cells (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct Sheet {
    cells: BTreeMap<(u32, u32), String>,
}

/// A cell's item name from its row and column (`R1C1`).
pub fn item(row: u32, col: u32) -> String {
    format!("R{row}C{col}")
}

/// The row and column of item `R<row>C<col>` (any case); `None` otherwise.
pub fn parse_item(item: &str) -> Option<(u32, u32)> {
    let folded = item.to_ascii_uppercase();
    let rest = folded.strip_prefix('R')?;
    let (row, col) = rest.split_once('C')?;
    let all_digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(row) || !all_digits(col) {
        return None;
    }
    let (row, col) = (row.parse().ok()?, col.parse().ok()?);
    ((1..=MAX_INDEX).contains(&row) && (1..=MAX_INDEX).contains(&col)).then_some((row, col))
}

impl Sheet {
    /// Sets cell `item` to `text` (a number, text, or `=formula`; empty
    /// clears it) and returns the items whose value changed, in row-column
    /// order.
    ///
    /// # Errors
    /// `InvalidParameter` for an item that is not `R<row>C<col>`.
    pub fn set(&mut self, item: &str, text: &str) -> Result<Vec<String>> {
        let at = parse_item(item).ok_or(Error::InvalidParameter("a cell is named R<row>C<col>, as R1C1"))?;
        let before = self.values();
        match text.is_empty() {
            true => self.cells.remove(&at),
            false => self.cells.insert(at, text.to_owned()),
        };
        Ok(self.changed_since(&before))
    }

    /// Empties the sheet; returns the items that had a value.
    pub fn clear(&mut self) -> Vec<String> {
        let before = self.values();
        self.cells.clear();
        self.changed_since(&before)
    }

    /// A cell's value (a formula evaluated); `None` for an empty cell or
    /// an item that is not a cell. A formula that fails reads `#ERR`, one
    /// over itself `#CYCLE`.
    pub fn value(&self, item: &str) -> Option<String> {
        let at = parse_item(item)?;
        self.cells.contains_key(&at).then(|| self.shown(at))
    }

    /// The cell's text as entered (a formula as written).
    pub fn formula(&self, item: &str) -> Option<&str> {
        self.cells.get(&parse_item(item)?).map(String::as_str)
    }

    /// The items that have something, in row-column order.
    pub fn items(&self) -> Vec<String> {
        self.cells.keys().map(|(r, c)| item(*r, *c)).collect()
    }

    fn values(&self) -> BTreeMap<(u32, u32), String> {
        self.cells.keys().map(|at| (*at, self.shown(*at))).collect()
    }

    fn changed_since(&self, before: &BTreeMap<(u32, u32), String>) -> Vec<String> {
        let after = self.values();
        let keys: BTreeSet<_> = before.keys().chain(after.keys()).collect();
        keys.into_iter().filter(|k| before.get(k) != after.get(k)).map(|(r, c)| item(*r, *c)).collect()
    }

    fn shown(&self, at: (u32, u32)) -> String {
        let Some(text) = self.cells.get(&at) else { return String::new() };
        if !text.starts_with('=') {
            return text.clone();
        }
        let mut visiting = vec![at];
        match self.eval_cell_formula(&text[1..], &mut visiting) {
            Ok(v) => number(v),
            Err(Fail::Cycle) => "#CYCLE".to_owned(),
            Err(Fail::Bad) => "#ERR".to_owned(),
        }
    }

    fn eval_cell_formula(&self, formula: &str, visiting: &mut Vec<(u32, u32)>) -> Result<f64, Fail> {
        let mut p = Parser { s: formula.as_bytes(), at: 0, sheet: self, visiting };
        let v = p.expr(0)?;
        p.skip_ws();
        if p.at != p.s.len() {
            return Err(Fail::Bad);
        }
        Ok(v)
    }

    /// A cell's number, for a formula over it: empty reads 0.
    fn number_at(&self, at: (u32, u32), visiting: &mut Vec<(u32, u32)>) -> Result<f64, Fail> {
        if visiting.contains(&at) {
            return Err(Fail::Cycle);
        }
        if visiting.len() > MAX_DEPTH {
            return Err(Fail::Bad);
        }
        let Some(text) = self.cells.get(&at) else { return Ok(0.0) };
        match text.strip_prefix('=') {
            Some(f) => {
                visiting.push(at);
                let v = self.eval_cell_formula(f, visiting);
                visiting.pop();
                v
            }
            None => text.trim().parse().map_err(|_| Fail::Bad),
        }
    }
}

#[derive(Debug)]
enum Fail {
    Cycle,
    Bad,
}

/// A number as a cell shows it: whole numbers without a fraction.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "#ERR".to_owned();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A recursive-descent parser of one formula.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    sheet: &'a Sheet,
    visiting: &'a mut Vec<(u32, u32)>,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    /// `expr := term (('+'|'-') term)*`
    fn expr(&mut self, depth: usize) -> Result<f64, Fail> {
        if depth > MAX_DEPTH {
            return Err(Fail::Bad);
        }
        let mut v = self.term(depth)?;
        loop {
            if self.eat(b'+') {
                v += self.term(depth)?;
            } else if self.eat(b'-') {
                v -= self.term(depth)?;
            } else {
                return Ok(v);
            }
        }
    }

    /// `term := factor (('*'|'/') factor)*`
    fn term(&mut self, depth: usize) -> Result<f64, Fail> {
        let mut v = self.factor(depth)?;
        loop {
            if self.eat(b'*') {
                v *= self.factor(depth)?;
            } else if self.eat(b'/') {
                v /= self.factor(depth)?;
            } else {
                return Ok(v);
            }
        }
    }

    /// `factor := number | cell | SUM(cell:cell) | '(' expr ')' | '-' factor`
    fn factor(&mut self, depth: usize) -> Result<f64, Fail> {
        if self.eat(b'-') {
            return Ok(-self.factor(depth + 1)?);
        }
        if self.eat(b'(') {
            let v = self.expr(depth + 1)?;
            return if self.eat(b')') { Ok(v) } else { Err(Fail::Bad) };
        }
        self.skip_ws();
        let start = self.at;
        while self.s.get(self.at).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'.') {
            self.at += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.at]).map_err(|_| Fail::Bad)?;
        if word.eq_ignore_ascii_case("SUM") {
            return self.sum();
        }
        if let Some(at) = parse_item(word) {
            return self.sheet.number_at(at, self.visiting);
        }
        word.parse().map_err(|_| Fail::Bad)
    }

    /// `SUM(R1C1:R3C2)`, after its name.
    fn sum(&mut self) -> Result<f64, Fail> {
        let inner = |p: &mut Self| -> Result<(u32, u32), Fail> {
            p.skip_ws();
            let start = p.at;
            while p.s.get(p.at).is_some_and(u8::is_ascii_alphanumeric) {
                p.at += 1;
            }
            std::str::from_utf8(&p.s[start..p.at]).ok().and_then(parse_item).ok_or(Fail::Bad)
        };
        if !self.eat(b'(') {
            return Err(Fail::Bad);
        }
        let from = inner(self)?;
        if !self.eat(b':') {
            return Err(Fail::Bad);
        }
        let to = inner(self)?;
        if !self.eat(b')') {
            return Err(Fail::Bad);
        }
        let (r0, r1) = (from.0.min(to.0), from.0.max(to.0));
        let (c0, c1) = (from.1.min(to.1), from.1.max(to.1));
        // Only cells that have something count (an empty range is 0).
        let inside: Vec<(u32, u32)> =
            self.sheet.cells.keys().copied().filter(|(r, c)| (r0..=r1).contains(r) && (c0..=c1).contains(c)).collect();
        inside.into_iter().try_fold(0.0, |acc, at| Ok(acc + self.sheet.number_at(at, self.visiting)?))
    }
}

/// A DDE server of `sheet` as service `service`, topic `topic` (S12): it
/// answers requests for cells, takes pokes and `R1C1=…`/`clear` executes,
/// and keeps advise loops on cells, publishing every change in order;
/// `on_change` hears of each changed cell and its new value too. Run its
/// loop with [`Dde::serve`].
///
/// # Errors
/// As [`Dde::new`] and [`Dde::register`].
pub fn serve(
    service: &str,
    topic: &str,
    sheet: Rc<RefCell<Sheet>>,
    on_change: impl Fn(&str, &str) + 'static,
) -> Result<Dde> {
    let (service_name, topic_name) = (service.to_owned(), topic.to_owned());
    let dde = Dde::new(move |dde, e| {
        let ours = |t: &str| fold(t) == fold(&topic_name);
        let publish = |changed: Result<Vec<String>>| match changed {
            Ok(items) => {
                for item in items {
                    on_change(&item, &sheet.borrow().value(&item).unwrap_or_default());
                    dde.post_advise(&topic_name, &item);
                }
                Reply::Ack
            }
            Err(_) => Reply::NotProcessed,
        };
        match *e {
            Event::Connect { topic, .. } if ours(topic) => Reply::Ack,
            Event::WildConnect { .. } => Reply::Pairs(vec![(service_name.clone(), topic_name.clone())]),
            Event::Request { topic, item, .. } | Event::AdviseRequest { topic, item, .. } if ours(topic) => {
                match sheet.borrow().value(item) {
                    Some(v) => Reply::Data(v.into_bytes()),
                    // An empty cell reads empty; a name that is no cell is not processed.
                    None if parse_item(item).is_some() => Reply::Data(Vec::new()),
                    None => Reply::NotProcessed,
                }
            }
            Event::AdviseStart { topic, item, .. } if ours(topic) && parse_item(item).is_some() => Reply::Ack,
            Event::Poke { topic, item, data, .. } if ours(topic) => {
                let text = super::conversation::text_of(data.to_vec());
                let changed = sheet.borrow_mut().set(item, &text);
                publish(changed)
            }
            Event::Execute { topic, command, .. } if ours(topic) => {
                let command = super::conversation::text_of(command.to_vec());
                let changed = match command.trim().split_once('=') {
                    Some((cell, text)) => sheet.borrow_mut().set(cell.trim(), text.trim()),
                    None if command.trim().eq_ignore_ascii_case("clear") => Ok(sheet.borrow_mut().clear()),
                    None => return Reply::NotProcessed,
                };
                publish(changed)
            }
            _ => Reply::NotProcessed,
        }
    })?;
    dde.register(service)?;
    Ok(dde)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_follow_their_cells_and_cycles_and_garbage_are_caught() {
        let mut s = Sheet::default();
        assert_eq!(s.set("R1C1", "1").unwrap(), ["R1C1"]);
        s.set("R2C1", "2").unwrap();
        assert_eq!(s.set("R3C1", "=SUM(R1C1:R2C1) * (2 + -1)").unwrap(), ["R3C1"]);
        assert_eq!(s.value("R3C1").as_deref(), Some("3"));
        assert_eq!(s.set("r1c1", "10").unwrap(), ["R1C1", "R3C1"]);
        assert_eq!(s.value("R3C1").as_deref(), Some("12"));
        s.set("R4C1", "=R4C1+1").unwrap();
        assert_eq!(s.value("R4C1").as_deref(), Some("#CYCLE"));
        s.set("R5C1", "=1/(R1C1").unwrap();
        assert_eq!(s.value("R5C1").as_deref(), Some("#ERR"));
        s.set("R6C1", "=1.5*3").unwrap();
        assert_eq!(s.value("R6C1").as_deref(), Some("4.5"));
        assert!(s.set("A1", "1").is_err());
        assert_eq!(parse_item("R0C1"), None);
        assert_eq!(parse_item("R1C99999999"), None);
        let deep = format!("={}1{}", "(".repeat(500), ")".repeat(500));
        s.set("R7C1", &deep).unwrap();
        assert_eq!(s.value("R7C1").as_deref(), Some("#ERR"));
    }
}
