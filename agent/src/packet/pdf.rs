//! `packet.pdf`: the document laid out on A4 pages with the PDF base-14 fonts (Helvetica,
//! Courier; nothing embedded, every viewer has them), written by `pdf-canvas`, which escapes
//! text strings and maps characters to WinAnsi (anything else prints as `?`, so hostile
//! evidence cannot inject PDF operators).
//!
//! Layout happens first (text wrapped with the fonts' real metrics, tables split across pages
//! with their header repeated), so the footer can say "page N of M"; drawing comes second.

use std::path::Path;

use anyhow::{Context, Result};
use pdf_canvas::graphicsstate::Color;
use pdf_canvas::{BuiltinFont, FontSource, Pdf};

use super::doc::{Block, Doc, Tone};

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 36.0;
const TOP: f32 = PAGE_H - 40.0;
const BOTTOM: f32 = 46.0;
const WIDTH: f32 = PAGE_W - 2.0 * MARGIN_X;

const BODY: f32 = 9.0;
const TABLE: f32 = 7.0;
const CODE: f32 = 7.2;

#[derive(Debug, Clone, Copy)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn builtin(self) -> BuiltinFont {
        match self {
            Font::Regular => BuiltinFont::Helvetica,
            Font::Bold => BuiltinFont::Helvetica_Bold,
            Font::Mono => BuiltinFont::Courier,
        }
    }
}

/// One drawing operation on a page.
#[derive(Debug, Clone)]
enum Op {
    Text {
        x: f32,
        y: f32,
        font: Font,
        size: f32,
        color: Color,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Color,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        color: Color,
        width: f32,
    },
}

// Colours are always RGB: pdf-canvas sets the page's colour space to DeviceRGB, and its gray
// colours (`g`) switch to DeviceGray, after which an RGB `sc` is malformed.
fn gray(v: u8) -> Color {
    Color::rgb(v, v, v)
}
fn black() -> Color {
    gray(0)
}
fn grey() -> Color {
    gray(100)
}
fn green() -> Color {
    Color::rgb(10, 110, 10)
}
fn red() -> Color {
    Color::rgb(170, 0, 0)
}

/// Width of `text` in points.
fn width(font: Font, size: f32, text: &str) -> f32 {
    font.builtin().get_width(size, text)
}

/// Wrap `text` to `max` points: at spaces, and inside words that are longer than a line
/// (hashes, store paths). Always at least one line.
fn wrap(font: Font, size: f32, text: &str, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if width(font, size, &candidate) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: break it by characters when it does not fit.
            let mut piece = String::new();
            for c in word.chars() {
                piece.push(c);
                if width(font, size, &piece) > max && piece.chars().count() > 1 {
                    piece.pop();
                    lines.push(std::mem::take(&mut piece));
                    piece.push(c);
                }
            }
            line = piece;
        }
        lines.push(line);
    }
    lines
}

struct Layout {
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let n = self.pages.len() - 1;
        &mut self.pages[n]
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Make room for `h` points, starting a page if needed.
    fn ensure(&mut self, h: f32) {
        if self.y - h < BOTTOM {
            self.new_page();
        }
    }

    fn text(&mut self, x: f32, font: Font, size: f32, color: Color, text: &str) {
        let y = self.y;
        self.ops().push(Op::Text {
            x,
            y,
            font,
            size,
            color,
            text: text.to_string(),
        });
    }

    fn para(&mut self, font: Font, size: f32, color: Color, text: &str) {
        let lead = size * 1.3;
        let lines = wrap(font, size, text, WIDTH);
        // Keep a paragraph together, and with a little of what follows (a table it introduces).
        self.ensure(lead * lines.len() as f32 + 40.0);
        for l in lines {
            self.ensure(lead);
            self.y -= lead;
            self.text(MARGIN_X, font, size, color, &l);
        }
        self.y -= size * 0.6;
    }

    fn heading(&mut self, text: &str) {
        // Keep a heading with at least a few lines of what follows.
        self.ensure(60.0);
        self.y -= 10.0;
        self.y -= 13.0;
        self.text(MARGIN_X, Font::Bold, 12.5, black(), text);
        self.y -= 4.0;
        self.rule(grey(), 0.6);
        self.y -= 6.0;
    }

    fn figures(&mut self, figs: &[(String, String, Tone)]) {
        let label_w = 140.0;
        let lead = BODY * 1.35;
        for (k, v, t) in figs {
            let lines = wrap(Font::Regular, BODY, v, WIDTH - label_w);
            let total = lead * lines.len() as f32;
            // Together when it fits on a page; a value taller than a page continues on the
            // next (it used to run off the bottom, like a tall table row).
            if total < TOP - BOTTOM {
                self.ensure(total);
            }
            let (font, color) = match t {
                Tone::Good => (Font::Bold, green()),
                Tone::Bad => (Font::Bold, red()),
                Tone::Muted => (Font::Regular, grey()),
                Tone::Normal => (Font::Regular, black()),
            };
            for (i, l) in lines.iter().enumerate() {
                self.ensure(lead);
                self.y -= lead;
                if i == 0 {
                    self.text(MARGIN_X, Font::Bold, BODY, black(), k);
                }
                self.text(MARGIN_X + label_w, font, BODY, color, l);
            }
        }
        self.y -= BODY * 0.8;
    }

    fn table(&mut self, columns: &[(String, f32)], rows: &[(Vec<String>, Tone)], empty: &str) {
        if rows.is_empty() {
            self.para(Font::Regular, BODY, grey(), empty);
            return;
        }
        let pad = 1.8;
        let widths = column_widths(columns, rows, pad);
        let lead = TABLE * 1.22;
        let tone_col = columns
            .iter()
            .position(|(c, _)| matches!(c.as_str(), "Status" | "Verdict" | "State" | "SLA" | "Resolution"));
        let header: Vec<Vec<String>> = columns
            .iter()
            .zip(&widths)
            .map(|((c, _), w)| wrap(Font::Bold, TABLE, c, w - 2.0 * pad))
            .collect();
        let header_h = header.iter().map(Vec::len).max().unwrap_or(1) as f32 * lead + 2.0 * pad;
        self.ensure(header_h + lead * 2.0 + 2.0 * pad);
        self.table_header(&header, &widths, header_h, lead, pad);
        for (cells, tone) in rows {
            let wrapped: Vec<Vec<String>> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| wrap(Font::Regular, TABLE, c, w - 2.0 * pad))
                .collect();
            let n_lines = wrapped.iter().map(Vec::len).max().unwrap_or(1);
            let h = n_lines as f32 * lead + 2.0 * pad;
            if self.y - h < BOTTOM {
                self.new_page();
                self.table_header(&header, &widths, header_h, lead, pad);
            }
            // A row taller than a whole page is split across pages (the header repeated on
            // each): before, everything below the page's bottom was silently cut off.
            let mut from = 0;
            while from < n_lines {
                let fit = ((self.y - BOTTOM - 2.0 * pad) / lead).floor().max(1.0) as usize;
                let to = n_lines.min(from + fit);
                self.table_row_slice(&wrapped, &widths, *tone, tone_col, from..to, lead, pad);
                from = to;
                if from < n_lines {
                    self.new_page();
                    self.table_header(&header, &widths, header_h, lead, pad);
                }
            }
        }
        self.y -= 8.0;
    }

    /// Draw lines `range` of one row's wrapped cells below `self.y`, with the row's tone.
    #[allow(clippy::too_many_arguments)]
    fn table_row_slice(
        &mut self,
        wrapped: &[Vec<String>],
        widths: &[f32],
        tone: Tone,
        tone_col: Option<usize>,
        range: std::ops::Range<usize>,
        lead: f32,
        pad: f32,
    ) {
        let h = range.len() as f32 * lead + 2.0 * pad;
        let top = self.y;
        if tone == Tone::Bad {
            self.ops().push(Op::Rect {
                x: MARGIN_X,
                y: top - h,
                w: WIDTH,
                h,
                color: Color::rgb(253, 236, 236),
            });
        }
        let mut x = MARGIN_X;
        for (i, (lines, w)) in wrapped.iter().zip(widths).enumerate() {
            let (font, color) = match (Some(i) == tone_col, tone) {
                (true, Tone::Good) => (Font::Bold, green()),
                (true, Tone::Bad) => (Font::Bold, red()),
                (_, Tone::Muted) => (Font::Regular, grey()),
                _ => (Font::Regular, black()),
            };
            let shown = lines.iter().enumerate().skip(range.start).take(range.len());
            for (j, l) in shown {
                let y = top - pad - ((j - range.start) as f32 + 1.0) * lead + 1.5;
                self.ops().push(Op::Text {
                    x: x + pad,
                    y,
                    font,
                    size: TABLE,
                    color,
                    text: l.clone(),
                });
            }
            x += w;
        }
        self.y = top - h;
        self.rule(gray(200), 0.4);
    }

    /// A horizontal line across the text width at the current position.
    fn rule(&mut self, color: Color, width: f32) {
        let y = self.y;
        self.ops().push(Op::Line { x1: MARGIN_X, y1: y, x2: PAGE_W - MARGIN_X, y2: y, color, width });
    }

    fn table_header(&mut self, header: &[Vec<String>], widths: &[f32], h: f32, lead: f32, pad: f32) {
        let top = self.y;
        self.ops().push(Op::Rect {
            x: MARGIN_X,
            y: top - h,
            w: WIDTH,
            h,
            color: gray(228),
        });
        let mut x = MARGIN_X;
        for (lines, w) in header.iter().zip(widths) {
            for (j, l) in lines.iter().enumerate() {
                let y = top - pad - (j as f32 + 1.0) * lead + 1.5;
                self.ops().push(Op::Text {
                    x: x + pad,
                    y,
                    font: Font::Bold,
                    size: TABLE,
                    color: black(),
                    text: l.clone(),
                });
            }
            x += w;
        }
        self.y = top - h;
    }

    fn code(&mut self, lines: &[String]) {
        let lead = CODE * 1.3;
        // Keep the block on one page when it fits on one; keep each line's indentation.
        let mut parts = Vec::new();
        for l in lines {
            let body = l.trim_start_matches(' ');
            let indent = &l[..l.len() - body.len()];
            let max = WIDTH - 8.0 - width(Font::Mono, CODE, indent);
            for (i, p) in wrap(Font::Mono, CODE, body, max).into_iter().enumerate() {
                parts.push(if i == 0 { format!("{indent}{p}") } else { format!("{indent}  {p}") });
            }
        }
        let total = lead * parts.len() as f32;
        if total < TOP - BOTTOM {
            self.ensure(total);
        }
        {
            for part in parts {
                self.ensure(lead);
                let top = self.y;
                self.ops().push(Op::Rect {
                    x: MARGIN_X,
                    y: top - lead,
                    w: WIDTH,
                    h: lead,
                    color: gray(243),
                });
                self.y -= lead;
                self.y += 2.0;
                self.text(MARGIN_X + 4.0, Font::Mono, CODE, black(), &part);
                self.y -= 2.0;
            }
        }
        self.y -= 8.0;
    }

    fn signatures(&mut self, roles: &[String]) {
        let fields = ["Name", "Title", "Signature", "Date"];
        let block_h = 20.0 + fields.len() as f32 * 30.0;
        self.ensure(block_h);
        let col_w = (WIDTH - 30.0) / 2.0;
        let top = self.y;
        for (i, role) in roles.iter().enumerate() {
            let x = MARGIN_X + (i % 2) as f32 * (col_w + 30.0);
            let y0 = top - (i / 2) as f32 * block_h;
            self.ops().push(Op::Text {
                x,
                y: y0 - 14.0,
                font: Font::Bold,
                size: BODY,
                color: black(),
                text: role.clone(),
            });
            for (j, f) in fields.iter().enumerate() {
                let y = y0 - 14.0 - (j as f32 + 1.0) * 30.0;
                self.ops().push(Op::Line {
                    x1: x,
                    y1: y,
                    x2: x + col_w,
                    y2: y,
                    color: black(),
                    width: 0.6,
                });
                self.ops().push(Op::Text {
                    x,
                    y: y - 9.0,
                    font: Font::Regular,
                    size: TABLE,
                    color: grey(),
                    text: f.to_string(),
                });
            }
        }
        self.y = top - block_h * roles.len().div_ceil(2) as f32;
    }
}

/// Column widths: each column's natural width (its widest cell, or its widest header word)
/// when everything fits; otherwise columns narrower than their weighted share keep their
/// natural width and the rest share what is left by weight (and wrap).
fn column_widths(columns: &[(String, f32)], rows: &[(Vec<String>, Tone)], pad: f32) -> Vec<f32> {
    let natural: Vec<f32> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            let head = title
                .split(' ')
                .map(|w| width(Font::Bold, TABLE, w))
                .fold(0.0, f32::max);
            let cells = rows
                .iter()
                .filter_map(|(r, _)| r.get(i))
                .map(|c| width(Font::Regular, TABLE, c))
                .fold(0.0, f32::max);
            head.max(cells) + 2.0 * pad + 0.2
        })
        .collect();
    let sum: f32 = natural.iter().sum();
    if sum <= WIDTH {
        return natural.iter().map(|n| n * WIDTH / sum).collect();
    }
    let mut out = vec![0.0f32; columns.len()];
    let mut open: Vec<usize> = (0..columns.len()).collect();
    let mut left = WIDTH;
    loop {
        let weight: f32 = open.iter().map(|&i| columns[i].1).sum();
        let (fit, rest): (Vec<usize>, Vec<usize>) = open
            .iter()
            .partition(|&&i| natural[i] <= columns[i].1 / weight * left);
        if fit.is_empty() {
            for &i in &rest {
                out[i] = columns[i].1 / weight * left;
            }
            return out;
        }
        for &i in &fit {
            out[i] = natural[i];
            left -= natural[i];
        }
        if rest.is_empty() {
            return out;
        }
        open = rest;
    }
}

/// Height of the blocks up to the next heading when they are all short kinds (paragraphs,
/// figures, signatures); `None` otherwise.
fn short_section_height(blocks: &[Block]) -> Option<f32> {
    let mut h = 0.0;
    for b in blocks {
        match b {
            Block::Heading(_) => break,
            Block::Para(t) => {
                h += wrap(Font::Regular, BODY, t, WIDTH).len() as f32 * BODY * 1.3 + BODY * 0.6
            }
            Block::Figures(f) => h += f.len() as f32 * BODY * 1.6 + BODY * 0.8,
            Block::Signatures(r) => h += (20.0 + 4.0 * 30.0) * r.len().div_ceil(2) as f32,
            Block::Table { .. } | Block::Code(_) => return None,
        }
    }
    Some(h)
}

/// Lay out the document into pages of drawing operations.
fn layout(doc: &Doc) -> Vec<Vec<Op>> {
    let mut l = Layout::new();
    l.y -= 16.0;
    l.text(MARGIN_X, Font::Bold, 16.0, black(), &doc.title);
    l.y -= 6.0;
    for s in &doc.subtitle {
        l.para(Font::Regular, BODY, grey(), s);
    }
    for (i, b) in doc.blocks.iter().enumerate() {
        match b {
            Block::Heading(t) => {
                // A short section (no table, no code: the attestation) stays on one page with
                // its heading.
                if let Some(h) = short_section_height(&doc.blocks[i + 1..]) {
                    l.ensure(h + 40.0);
                }
                l.heading(t)
            }
            Block::Para(t) => l.para(Font::Regular, BODY, black(), t),
            Block::Figures(f) => l.figures(f),
            Block::Table { columns, rows, empty } => l.table(columns, rows, empty),
            Block::Code(lines) => l.code(lines),
            Block::Signatures(roles) => l.signatures(roles),
        }
    }
    l.pages
}

/// Write the PDF to `path` (a temporary name in the output directory; the caller renames).
/// Returns the number of pages.
pub fn write(doc: &Doc, footer: &str, path: &Path) -> Result<usize> {
    let pages = layout(doc);
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut pdf = Pdf::new(file).with_context(|| format!("writing {}", path.display()))?;
    pdf.set_title(&doc.title);
    pdf.set_producer(&format!("msp-agent {}", crate::AGENT_VERSION));
    let n = pages.len();
    for (i, ops) in pages.into_iter().enumerate() {
        let foot = format!("{footer}    page {} of {n}", i + 1);
        pdf.render_page(PAGE_W, PAGE_H, |c| {
            for op in &ops {
                match op {
                    Op::Text { x, y, font, size, color, text } => {
                        let f = c.get_font(font.builtin());
                        c.text(|t| {
                            t.set_font(&f, *size)?;
                            t.set_fill_color(*color)?;
                            t.pos(*x, *y)?;
                            t.show(text)
                        })?;
                    }
                    Op::Rect { x, y, w, h, color } => {
                        c.set_fill_color(*color)?;
                        c.rectangle(*x, *y, *w, *h)?;
                        c.fill()?;
                    }
                    Op::Line { x1, y1, x2, y2, color, width } => {
                        c.set_stroke_color(*color)?;
                        c.set_line_width(*width)?;
                        c.line(*x1, *y1, *x2, *y2)?;
                        c.stroke()?;
                    }
                }
            }
            let f = c.get_font(BuiltinFont::Helvetica);
            c.text(|t| {
                t.set_font(&f, 7.0)?;
                t.set_fill_color(grey())?;
                t.pos(MARGIN_X, 22.0)?;
                t.show(&foot)
            })
        })
        .with_context(|| format!("writing {}", path.display()))?;
    }
    pdf.finish().with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_inside_long_words() {
        let lines = wrap(Font::Regular, 7.0, "a b c", 1000.0);
        assert_eq!(lines, vec!["a b c"]);
        let hash = "0123456789abcdef".repeat(4);
        let lines = wrap(Font::Regular, 7.0, &hash, 60.0);
        assert!(lines.len() > 2, "{lines:?}");
        assert_eq!(lines.concat(), hash);
        for l in &lines {
            assert!(width(Font::Regular, 7.0, l) <= 60.0);
        }
        assert_eq!(wrap(Font::Regular, 7.0, "", 50.0), vec![""]);
    }
}
