//! Our node's invoices: invoice, listinvoices, delinvoice, decode (lightningd/invoice.c).
//! The bolt11 string is opaque (`lnbcrt...`): nothing here encodes or signs a real invoice, but
//! `decode`/`decodepay` know the ones this node issued.

use super::Network;
use super::params::{self, INVOICE_LABEL_ALREADY_EXISTS, INVOICE_NOT_FOUND, RpcError, RpcResult};
use crate::sha256::{hex, sha256, unhex};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    Unpaid,
    Paid,
    Expired,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Unpaid => "unpaid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub label: String,
    pub bolt11: String,
    pub payment_hash: String,
    pub preimage: String,
    pub payment_secret: String,
    /// `None` for "any".
    pub amount_msat: Option<u64>,
    pub description: String,
    pub created_at: u64,
    pub expires_at: u64,
    /// min_final_cltv_expiry written into the invoice.
    pub cltv: u32,
    pub paid: Option<PaidInfo>,
    pub created_index: u64,
    pub updated_index: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PaidInfo {
    pub pay_index: u64,
    pub amount_received_msat: u64,
    pub paid_at: u64,
}

/// lightningd's `invoice_secret`: sha256 of the preimage with its first bit flipped.
pub fn invoice_secret(preimage: &[u8]) -> [u8; 32] {
    let mut m = preimage.to_vec();
    m[0] ^= 1;
    sha256(&m)
}

impl Network {
    pub fn invoice_status(&self, i: usize) -> InvoiceStatus {
        let inv = &self.invoices[i];
        if inv.paid.is_some() {
            InvoiceStatus::Paid
        } else if self.now() > inv.expires_at {
            InvoiceStatus::Expired
        } else {
            InvoiceStatus::Unpaid
        }
    }

    pub fn invoice_by_label(&self, label: &str) -> Option<usize> {
        self.invoices.iter().position(|i| i.label == label)
    }

    pub fn invoice_by_hash(&self, hash: &str) -> Option<usize> {
        self.invoices.iter().position(|i| i.payment_hash == hash)
    }

    pub fn invoice_json(&self, i: usize) -> Value {
        let inv = &self.invoices[i];
        let status = self.invoice_status(i);
        let mut o = Map::new();
        o.insert("label".into(), json!(inv.label));
        o.insert("bolt11".into(), json!(inv.bolt11));
        o.insert("payment_hash".into(), json!(inv.payment_hash));
        if let Some(a) = inv.amount_msat {
            o.insert("amount_msat".into(), json!(a));
        }
        o.insert("status".into(), json!(status.as_str()));
        if let Some(p) = &inv.paid {
            o.insert("pay_index".into(), json!(p.pay_index));
            o.insert("amount_received_msat".into(), json!(p.amount_received_msat));
            o.insert("paid_at".into(), json!(p.paid_at));
            o.insert("payment_preimage".into(), json!(inv.preimage));
        }
        o.insert("description".into(), json!(inv.description));
        o.insert("expires_at".into(), json!(inv.expires_at));
        o.insert("created_index".into(), json!(inv.created_index));
        if let Some(u) = inv.updated_index {
            o.insert("updated_index".into(), json!(u));
        }
        Value::Object(o)
    }

    pub fn invoice(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(
            p,
            &[
                ("amount_msat", true),
                ("label", true),
                ("description", true),
                ("expiry", false),
                ("fallbacks", false),
                ("preimage", false),
                ("exposeprivatechannels", false),
                ("cltv", false),
                ("deschashonly", false),
            ],
        )?;
        let amount_tok = p.get("amount_msat").cloned().unwrap_or(Value::Null);
        let amount_msat = if amount_tok.as_str() == Some("any") {
            None
        } else {
            match params::parse_msat(&amount_tok) {
                Some(a) if a > 0 => Some(a),
                _ => {
                    return Err(RpcError::badparam(
                        "amount_msat",
                        "should be positive msat or 'any'",
                        &amount_tok,
                    ));
                }
            }
        };
        let label = p.label("label")?.unwrap_or_default();
        let description = p.string("description")?.unwrap_or_default();
        let expiry = p.u64("expiry")?.unwrap_or(3600 * 24 * 7);
        let cltv = p.u32("cltv")?.unwrap_or(self.config.cltv_final);
        p.bool("deschashonly")?;
        let preimage = match p.get("preimage") {
            None => self.random32().to_vec(),
            Some(v) => match v.as_str().and_then(unhex).filter(|b| b.len() == 32) {
                Some(b) => b,
                None => return Err(RpcError::badparam("preimage", "should be 64 hex digits", v)),
            },
        };
        if label.len() > 128 {
            return Err(RpcError::invalid(format!("Label '{label}' over 128 bytes")));
        }
        if description.len() > 640 && p.bool("deschashonly")? != Some(true) {
            return Err(RpcError::invalid(format!(
                "Description greater than 640 bytes invalid (description length {})",
                description.len()
            )));
        }
        let payment_hash = hex(&sha256(&preimage));
        if self.invoice_by_hash(&payment_hash).is_some() {
            return Err(RpcError::new(
                params::INVOICE_PREIMAGE_ALREADY_EXISTS,
                "preimage already used",
            ));
        }
        if self.invoice_by_label(&label).is_some() {
            return Err(RpcError::new(
                INVOICE_LABEL_ALREADY_EXISTS,
                format!("Duplicate label '{label}'"),
            ));
        }
        let now = self.now();
        let created_index = self.invoice_index.next_created();
        let secret = hex(&invoice_secret(&preimage));
        // Opaque but unique and invoice-looking: hrp for regtest plus amount, then a digest.
        let amount_part = amount_msat
            .map(|a| format!("{}n", a / 100))
            .unwrap_or_default();
        let bolt11 = format!(
            "lnbcrt{amount_part}1pstandin{}",
            &hex(&sha256(format!("{payment_hash}{label}").as_bytes()))[..52]
        );
        self.invoices.push(Invoice {
            label,
            bolt11: bolt11.clone(),
            payment_hash: payment_hash.clone(),
            preimage: hex(&preimage),
            payment_secret: secret.clone(),
            amount_msat,
            description,
            created_at: now,
            expires_at: now + expiry,
            cltv,
            paid: None,
            created_index,
            updated_index: None,
        });
        Ok(json!({
            "payment_hash": payment_hash,
            "expires_at": now + expiry,
            "bolt11": bolt11,
            "payment_secret": secret,
            "created_index": created_index,
        }))
    }

    pub fn listinvoices(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(
            p,
            &[
                ("label", false),
                ("invstring", false),
                ("payment_hash", false),
                ("offer_id", false),
                ("index", false),
                ("start", false),
                ("limit", false),
            ],
        )?;
        let label = p.label("label")?;
        let invstring = p.string("invstring")?;
        let hash = p.sha256("payment_hash")?;
        let offer = p.sha256("offer_id")?;
        let n = [
            label.is_some(),
            invstring.is_some(),
            hash.is_some(),
            offer.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n > 1 {
            return Err(RpcError::invalid(
                "Can only specify one of {label}, {invstring}, {payment_hash} or {offer_id}",
            ));
        }
        let hash = match invstring {
            Some(s) => match self.invoices.iter().find(|i| i.bolt11 == s) {
                Some(i) => Some(i.payment_hash.clone()),
                None => return Err(RpcError::invalid("Invalid invstring")),
            },
            None => hash,
        };
        let list: Vec<Value> = (0..self.invoices.len())
            .filter(|&i| label.as_ref().is_none_or(|l| self.invoices[i].label == *l))
            .filter(|&i| {
                hash.as_ref()
                    .is_none_or(|h| self.invoices[i].payment_hash == *h)
            })
            .filter(|_| offer.is_none())
            .map(|i| self.invoice_json(i))
            .collect();
        Ok(json!({"invoices": list}))
    }

    pub fn delinvoice(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(p, &[("label", true), ("status", true), ("desconly", false)])?;
        let label = p.label("label")?.unwrap_or_default();
        let status = p.string("status")?.unwrap_or_default();
        let desconly = p.bool("desconly")?.unwrap_or(false);
        let i = self
            .invoice_by_label(&label)
            .ok_or_else(|| RpcError::new(INVOICE_NOT_FOUND, "Unknown invoice"))?;
        let actual = self.invoice_status(i).as_str();
        if actual != status {
            return Err(RpcError::new(
                params::INVOICE_STATUS_UNEXPECTED,
                format!("Invoice status is {actual} not {status}"),
            )
            .with_data(json!({"current_status": actual, "expected_status": status})));
        }
        let out = self.invoice_json(i);
        if desconly {
            self.invoices[i].description.clear();
        } else {
            self.invoices.remove(i);
        }
        Ok(out)
    }

    /// `decode` / `decodepay` for invoices this node issued.
    pub fn decode(&mut self, method: &str, p: &Value) -> RpcResult {
        let name = if method == "decode" {
            "string"
        } else {
            "bolt11"
        };
        let p = params::parse(p, &[(name, true), ("description", false)])?;
        let s = p.string(name)?.unwrap_or_default();
        let Some(inv) = self.invoices.iter().find(|i| i.bolt11 == s) else {
            return Err(RpcError::invalid(format!(
                "{name}: Unparsable invoice (the stand-in only decodes its own): invalid token '\"{s}\"'"
            )));
        };
        let mut o = Map::new();
        if method == "decode" {
            o.insert("type".into(), json!("bolt11 invoice"));
            o.insert("valid".into(), json!(true));
        }
        o.insert("currency".into(), json!("bcrt"));
        o.insert("created_at".into(), json!(inv.created_at));
        o.insert("expiry".into(), json!(inv.expires_at - inv.created_at));
        o.insert("payee".into(), json!(self.nodes[self.us].id));
        if let Some(a) = inv.amount_msat {
            o.insert("amount_msat".into(), json!(a));
        }
        o.insert("description".into(), json!(inv.description));
        o.insert("min_final_cltv_expiry".into(), json!(inv.cltv));
        o.insert("payment_secret".into(), json!(inv.payment_secret));
        o.insert("features".into(), json!("02024100"));
        o.insert("payment_hash".into(), json!(inv.payment_hash));
        o.insert(
            "signature".into(),
            json!("3045022100".to_string() + &"00".repeat(64)),
        );
        Ok(Value::Object(o))
    }
}
