//! A small, bounded XML tree for the documents of the Windows API (identity info, identity
//! export; later invitations and configuration), read with quick-xml.
//!
//! The documents are tiny and come from strangers, so the reader bounds input size, depth and
//! element count, refuses DTDs, and keeps nothing but elements, attributes and text.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::{IdentityError, Result};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 16;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 1024;

/// An element with its attributes, text and children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// The qualified name as written (`dt:dt` stays `dt:dt`).
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attributes: Vec<(String, String)>,
    /// Concatenated, unescaped text directly inside this element, trimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// A new element with no attributes, text or children.
    pub fn new(name: &str) -> Self {
        Element {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// Adds an attribute (builder style).
    pub fn attr(mut self, name: &str, value: &str) -> Self {
        self.attributes.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the text (builder style).
    pub fn text(mut self, text: &str) -> Self {
        self.text = text.to_owned();
        self
    }

    /// Adds a child (builder style).
    pub fn child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// The value of an attribute.
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child of that name.
    pub fn get_child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child of that name, or a [`IdentityError::MalformedDocument`] naming it.
    pub fn require_child(&self, name: &str) -> Result<&Element> {
        self.get_child(name).ok_or_else(|| {
            IdentityError::MalformedDocument(format!("<{}> has no <{name}>", self.name))
        })
    }

    /// Serialises the element as XML text with escaping.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attributes {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&quick_xml::escape::escape(v.as_str()));
            out.push('"');
        }
        if self.text.is_empty() && self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&quick_xml::escape::escape(self.text.as_str()));
        for c in &self.children {
            c.write(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Parses a whole document of at most `max_bytes` into its root element.
pub fn parse(input: &str, max_bytes: usize) -> Result<Element> {
    let bad = |why: String| IdentityError::MalformedDocument(why);
    if input.len() > max_bytes {
        return Err(bad(format!(
            "document of {} bytes exceeds the limit of {max_bytes}",
            input.len()
        )));
    }
    let mut reader = Reader::from_str(input);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| bad(format!("not well-formed XML: {e}")))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                count += 1;
                if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err(bad("document is nested too deeply or too large".into()));
                }
                if root.is_some() {
                    return Err(bad("content after the root element".into()));
                }
                let name = std::str::from_utf8(e.name().as_ref())
                    .map_err(|_| bad("element name is not UTF-8".into()))?
                    .to_owned();
                let mut el = Element::new(&name);
                for a in e.attributes() {
                    let a = a.map_err(|e| bad(format!("bad attribute: {e}")))?;
                    let key = std::str::from_utf8(a.key.as_ref())
                        .map_err(|_| bad("attribute name is not UTF-8".into()))?
                        .to_owned();
                    let value = a
                        .unescape_value()
                        .map_err(|e| bad(format!("bad attribute value: {e}")))?
                        .into_owned();
                    el.attributes.push((key, value));
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(el);
                } else {
                    close(el, &mut stack, &mut root);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| bad("unbalanced end tag".into()))?;
                close(el, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| bad(format!("bad text: {e}")))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(text.trim()),
                    None if text.trim().is_empty() => {}
                    None => return Err(bad("text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c)
                    .map_err(|_| bad("CDATA is not UTF-8".into()))?
                    .to_owned();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None => return Err(bad("CDATA outside the root element".into())),
                }
            }
            Event::DocType(_) => return Err(bad("document type declarations are refused".into())),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(bad("document ends inside an element".into()));
    }
    root.ok_or_else(|| bad("no root element".into()))
}

fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// Microsoft's namespace for `dt:dt="bin.base64"` typed elements.
pub const DATATYPES_NS: &str = "urn:schemas-microsoft-com:datatypes";

/// An element holding base64 binary data, typed as Windows writes it.
pub fn base64_element(name: &str, data: &[u8]) -> Element {
    use base64::Engine as _;
    Element::new(name)
        .attr("xmlns:dt", DATATYPES_NS)
        .attr("dt:dt", "bin.base64")
        .text(&base64::engine::general_purpose::STANDARD.encode(data))
}

/// Decodes the base64 text of an element (white space inside is allowed, as in Windows' output).
pub fn base64_content(el: &Element, max_bytes: usize) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let compact: String = el.text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() / 4 * 3 > max_bytes {
        return Err(IdentityError::BadEncoding(format!(
            "<{}> holds more than {max_bytes} bytes",
            el.name
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| IdentityError::BadEncoding(format!("<{}> is not base64: {e}", el.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_tree() {
        let doc = Element::new("ROOT")
            .attr("VERSION", "1.0")
            .child(Element::new("A").text("x < y & \"z\""))
            .child(base64_element("B", b"\x00\x01binary"));
        let text = doc.to_xml();
        let back = parse(&text, 1 << 16).unwrap();
        assert_eq!(back, doc);
        assert_eq!(
            base64_content(back.get_child("B").unwrap(), 100).unwrap(),
            b"\x00\x01binary"
        );
    }

    #[test]
    fn refuses_what_it_should() {
        for bad in [
            "",
            "just text",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a>&unknown;</a>",
        ] {
            assert!(parse(bad, 1000).is_err(), "{bad:?}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep, 1 << 20).is_err());
        assert!(parse("<a/>", 2).is_err());
    }
}
