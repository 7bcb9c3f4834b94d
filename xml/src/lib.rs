//! A small element tree over quick-xml for SOAP (EWS) and POX (Autodiscover): elements by local
//! name with their namespace, attributes, children and text. Both sides cap what they read, so a
//! tree is simpler than streaming. Shared by the engine's client and fake-exchange's server.

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub ns: Option<String>,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first element named `name` anywhere below (depth first).
    pub fn find(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(found) = c.find(name) {
                return Some(found);
            }
        }
        None
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of a child.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Parses a whole document; the error says where it broke.
pub fn parse(bytes: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("malformed XML at byte {position}: {e}"))?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
            _ => None,
        };
        match event {
            Event::Start(e) => stack.push(start(&e, ns)?),
            Event::Empty(e) => {
                let el = start(&e, ns)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("an end tag without a start")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.xml_content().map_err(|e| e.to_string())?;
                    top.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    if let Some(ch) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                        top.text.push(ch);
                    } else {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        let ch = match name.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => return Err(format!("unknown entity &{other};")),
                        };
                        top.text.push(ch);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".to_string())
}

fn start(e: &BytesStart<'_>, ns: Option<String>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        ns,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Text and attribute escaping for what we write.
pub fn esc(s: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_have_local_names_namespaces_and_unescaped_text() {
        let doc = br#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="urn:t"><s:Body><t:A Id="x&amp;y">a &lt; b &#65;<![CDATA[<c>]]></t:A><t:B/></s:Body></s:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        let a = root.find("A").unwrap();
        assert_eq!(a.ns.as_deref(), Some("urn:t"));
        assert_eq!(a.attr("Id"), Some("x&y"));
        assert_eq!(a.text, "a < b A<c>");
        assert!(root.find("B").is_some());
    }

    #[test]
    fn broken_documents_are_errors_not_panics() {
        for doc in [
            &b"<a><b></a>"[..],
            b"<a>",
            b"",
            b"<a>&bogus;</a>",
            b"<a x='1' x='2'/>",
        ] {
            assert!(parse(doc).is_err(), "{}", String::from_utf8_lossy(doc));
        }
    }
}
