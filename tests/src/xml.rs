//! # Introspection XML, normalised
//!
//! A small parser for D-Bus introspection documents (elements, attributes,
//! comments, a doctype; text is ignored) and [`interface_facts`], which turns
//! one interface into a sorted set of lines such as
//! `method CreateAccount(in a{sv} settings, out o path)`, so that the
//! checked-in XML and what the daemon serves can be compared without caring
//! about whitespace, attribute order, element order or annotations.
//!
//! Only what introspection needs is supported; anything else is an error, not
//! a guess.

use std::collections::BTreeSet;

/// One XML element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Attributes in document order, entities decoded.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The value of an attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The children with this tag name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parse a document and return its root element.
pub fn parse(doc: &str) -> Result<Element, String> {
    let mut p = Parser { s: doc, pos: 0 };
    p.skip_misc()?;
    let root = p.element()?;
    p.skip_misc()?;
    if p.pos != p.s.len() {
        return Err(format!("trailing content at byte {}", p.pos));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    fn skip_past(&mut self, end: &str) -> Result<(), String> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => Err(format!("unterminated construct, expected {end:?}")),
        }
    }

    /// Skip whitespace, comments, processing instructions and doctypes.
    fn skip_misc(&mut self) -> Result<(), String> {
        loop {
            self.skip_ws();
            if self.rest().starts_with("<!--") {
                self.skip_past("-->")?;
            } else if self.rest().starts_with("<?") {
                self.skip_past("?>")?;
            } else if self.rest().starts_with("<!DOCTYPE") {
                self.skip_past(">")?;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self
            .rest()
            .find(|c: char| c.is_whitespace() || matches!(c, '>' | '/' | '='))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(format!("expected a name at byte {}", self.pos));
        }
        let n = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(n)
    }

    fn element(&mut self) -> Result<Element, String> {
        if !self.rest().starts_with('<') {
            return Err(format!("expected an element at byte {}", self.pos));
        }
        self.pos += 1;
        let name = self.name()?;
        let mut attrs = Vec::new();
        loop {
            self.skip_ws();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                return Ok(Element {
                    name,
                    attrs,
                    children: Vec::new(),
                });
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break;
            }
            let key = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(format!("expected = after attribute {key}"));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = self
                .rest()
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or_else(|| format!("expected a quoted value for {key}"))?;
            self.pos += 1;
            let end = self
                .rest()
                .find(quote)
                .ok_or_else(|| format!("unterminated value of {key}"))?;
            let value = decode(&self.rest()[..end]);
            self.pos += end + 1;
            attrs.push((key, value));
        }
        let mut children = Vec::new();
        loop {
            // Text between elements (documentation, whitespace) is ignored.
            let next = self
                .rest()
                .find('<')
                .ok_or_else(|| format!("unterminated element {name}"))?;
            self.pos += next;
            if self.rest().starts_with("<!--") {
                self.skip_past("-->")?;
            } else if self.rest().starts_with("</") {
                self.pos += 2;
                let end = self.name()?;
                if end != name {
                    return Err(format!("</{end}> closes <{name}>"));
                }
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err(format!("expected > after </{end}"));
                }
                self.pos += 1;
                return Ok(Element {
                    name,
                    attrs,
                    children,
                });
            } else {
                children.push(self.element()?);
            }
        }
    }
}

fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Every `<interface>` element in a document (at any depth), by name.
pub fn interfaces(root: &Element) -> Vec<&Element> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        if e.name == "interface" {
            out.push(e);
        }
        stack.extend(e.children.iter());
    }
    out
}

/// The interface with this name in a document.
pub fn find_interface<'a>(root: &'a Element, name: &str) -> Option<&'a Element> {
    interfaces(root)
        .into_iter()
        .find(|i| i.attr("name") == Some(name))
}

/// The annotation that says whether a property announces its changes.
pub const EMITS_CHANGED_SIGNAL: &str = "org.freedesktop.DBus.Property.EmitsChangedSignal";

/// One line per method (arguments in order, with direction, type and name),
/// signal and property (type, access and whether it emits
/// `PropertiesChanged`), sorted. Other annotations and documentation are
/// left out.
pub fn interface_facts(iface: &Element) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    for m in iface.children_named("method") {
        let args: Vec<String> = m
            .children_named("arg")
            .map(|a| {
                format!(
                    "{} {} {}",
                    a.attr("direction").unwrap_or("in"),
                    a.attr("type").unwrap_or("?"),
                    a.attr("name").unwrap_or("")
                )
                .trim_end()
                .to_owned()
            })
            .collect();
        facts.insert(format!(
            "method {}({})",
            m.attr("name").unwrap_or("?"),
            args.join(", ")
        ));
    }
    for s in iface.children_named("signal") {
        let args: Vec<String> = s
            .children_named("arg")
            .map(|a| {
                format!(
                    "{} {}",
                    a.attr("type").unwrap_or("?"),
                    a.attr("name").unwrap_or("")
                )
                .trim_end()
                .to_owned()
            })
            .collect();
        facts.insert(format!(
            "signal {}({})",
            s.attr("name").unwrap_or("?"),
            args.join(", ")
        ));
    }
    for p in iface.children_named("property") {
        // The one annotation clients act on: whether PropertiesChanged is
        // sent. Absent means "true" (D-Bus specification).
        let emits = p
            .children_named("annotation")
            .find(|a| a.attr("name") == Some(EMITS_CHANGED_SIGNAL))
            .and_then(|a| a.attr("value"))
            .unwrap_or("true");
        facts.insert(format!(
            "property {} {} {} emits={emits}",
            p.attr("name").unwrap_or("?"),
            p.attr("type").unwrap_or("?"),
            p.attr("access").unwrap_or("?")
        ));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- a comment -->
<node>
  <interface name="org.example.A">
    <!-- doc -->
    <method name="Do">
      <arg type="a{sv}" name="settings" direction="in"/>
      <arg direction="out" name="path" type="o"/>
    </method>
    <signal name="Happened"><arg name="what" type="s"/></signal>
    <property name="Version" type="s" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>
    </property>
  </interface>
  <node name="child"/>
</node>
"#;

    #[test]
    fn parses_and_normalises_an_interface() {
        let root = parse(DOC).expect("the document parses");
        assert_eq!(root.name, "node");
        let a = find_interface(&root, "org.example.A").expect("interface A is there");
        let facts: Vec<String> = interface_facts(a).into_iter().collect();
        assert_eq!(
            facts,
            vec![
                "method Do(in a{sv} settings, out o path)",
                "property Version s read emits=const",
                "signal Happened(s what)",
            ]
        );
        assert!(find_interface(&root, "org.example.B").is_none());
    }

    #[test]
    fn attribute_order_and_whitespace_do_not_matter() {
        let a = parse(r#"<node><interface name="i"><method name="M"><arg name="x" type="s" direction="in"/></method></interface></node>"#)
            .expect("parses");
        let b = parse("<node>\n <interface   name='i'>\n<method name='M'>\n<arg direction='in' type='s'\n name='x' /></method>\n</interface></node>")
            .expect("parses");
        assert_eq!(
            interface_facts(find_interface(&a, "i").expect("i")),
            interface_facts(find_interface(&b, "i").expect("i"))
        );
    }

    #[test]
    fn rejects_broken_documents() {
        assert!(parse("<node><interface></node>").is_err());
        assert!(parse("<node").is_err());
        assert!(parse("<a/><b/>").is_err());
    }

    #[test]
    fn decodes_entities() {
        let e = parse(r#"<a v="&lt;x&gt; &amp; &quot;y&quot;"/>"#).expect("parses");
        assert_eq!(e.attr("v"), Some(r#"<x> & "y""#));
    }
}
