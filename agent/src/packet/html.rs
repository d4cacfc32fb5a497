//! `packet.html`: the document as one self-contained page (inline CSS, no script, no external
//! resource). Every string is escaped: evidence fields are hostile input, and a hostname or
//! journal excerpt must never become markup.

use std::fmt::Write as _;

use super::doc::{Block, Doc, Tone};

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business in a report; show them, do not pass them.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:Helvetica,Arial,sans-serif;font-size:10pt;margin:2em;color:#111}\
h1{font-size:16pt;margin-bottom:.2em}h2{font-size:13pt;border-bottom:1px solid #999;margin-top:1.6em}\
p.sub{color:#444;margin:.1em 0}table{border-collapse:collapse;width:100%;margin:.5em 0}\
th,td{border:1px solid #bbb;padding:2px 4px;text-align:left;vertical-align:top;font-size:8.5pt;word-break:break-word}\
th{background:#e8e8e8}tr.good td.tone{color:#0a6b0a;font-weight:bold}tr.bad td{background:#fdecec}\
tr.bad td.tone{color:#a00;font-weight:bold}tr.muted td{color:#777}\
dl.figs{display:grid;grid-template-columns:14em auto;gap:2px 1em}dl.figs dt{font-weight:bold}\
dd.good{color:#0a6b0a}dd.bad{color:#a00;font-weight:bold}dd.muted{color:#777}dd{margin:0}\
pre{background:#f4f4f4;padding:.6em;font-size:8pt;white-space:pre-wrap}\
div.sig{display:inline-block;width:45%;margin-right:4%;margin-top:2em;vertical-align:top}\
div.sig p{border-top:1px solid #000;padding-top:2px;margin:2.2em 0 0 0;font-size:8.5pt}\
@media print{body{margin:0}h2{page-break-after:avoid}tr{page-break-inside:avoid}}";

fn tone_class(t: Tone) -> &'static str {
    match t {
        Tone::Normal => "",
        Tone::Good => "good",
        Tone::Bad => "bad",
        Tone::Muted => "muted",
    }
}

/// Render the document.
pub fn render(doc: &Doc) -> String {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = writeln!(h, "<title>{}</title><style>{CSS}</style></head><body>", escape(&doc.title));
    let _ = writeln!(h, "<h1>{}</h1>", escape(&doc.title));
    for s in &doc.subtitle {
        let _ = writeln!(h, "<p class=\"sub\">{}</p>", escape(s));
    }
    for b in &doc.blocks {
        match b {
            Block::Heading(t) => {
                let _ = writeln!(h, "<h2>{}</h2>", escape(t));
            }
            Block::Para(t) => {
                let _ = writeln!(h, "<p>{}</p>", escape(t));
            }
            Block::Figures(f) => {
                h.push_str("<dl class=\"figs\">");
                for (k, v, t) in f {
                    let _ = write!(
                        h,
                        "<dt>{}</dt><dd class=\"{}\">{}</dd>",
                        escape(k),
                        tone_class(*t),
                        escape(v)
                    );
                }
                h.push_str("</dl>\n");
            }
            Block::Table { columns, rows, empty } => {
                if rows.is_empty() {
                    let _ = writeln!(h, "<p><em>{}</em></p>", escape(empty));
                    continue;
                }
                // The status-like column (the one whose tone matters) is marked per table:
                // tone applies to the whole row, colour to cells marked `tone`.
                h.push_str("<table><thead><tr>");
                for (c, _) in columns {
                    let _ = write!(h, "<th>{}</th>", escape(c));
                }
                h.push_str("</tr></thead><tbody>\n");
                let tone_col = columns
                    .iter()
                    .position(|(c, _)| matches!(c.as_str(), "Status" | "Verdict" | "State" | "SLA" | "Resolution"));
                for (cells, t) in rows {
                    let _ = write!(h, "<tr class=\"{}\">", tone_class(*t));
                    for (i, c) in cells.iter().enumerate() {
                        if Some(i) == tone_col {
                            let _ = write!(h, "<td class=\"tone\">{}</td>", escape(c));
                        } else {
                            let _ = write!(h, "<td>{}</td>", escape(c));
                        }
                    }
                    h.push_str("</tr>\n");
                }
                h.push_str("</tbody></table>\n");
            }
            Block::Code(lines) => {
                h.push_str("<pre>");
                for l in lines {
                    h.push_str(&escape(l));
                    h.push('\n');
                }
                h.push_str("</pre>\n");
            }
            Block::Signatures(roles) => {
                for r in roles {
                    let _ = write!(
                        h,
                        "<div class=\"sig\"><strong>{}</strong><p>Name</p><p>Title</p><p>Signature</p><p>Date</p></div>",
                        escape(r)
                    );
                }
                h.push('\n');
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_are_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\"\u{7}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\\u{0007}"
        );
    }
}
