//! The channels a message can travel on.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Whatsapp,
    Telegram,
    Avito,
    /// A local channel for trying the bot (`avioctl chat`, the cabinet's box):
    /// replies stay inside Avio for the reader that asked.
    Simulator,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Whatsapp, Channel::Telegram, Channel::Avito, Channel::Simulator];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Telegram => "telegram",
            Channel::Avito => "avito",
            Channel::Simulator => "simulator",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text.trim().to_ascii_lowercase())
    }

    /// The name shown to the bot's persona (`{CHANNEL}`).
    pub fn display_name(self) -> &'static str {
        match self {
            Channel::Whatsapp | Channel::Simulator => "WhatsApp",
            Channel::Telegram => "Telegram",
            Channel::Avito => "Авито",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
