//! The helper's side of the conversation: each question goes to the caller over the pipe
//! and waits for its reply. Anything but the expected reply is a conversation failure.

#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use super::wire::{hex, unhex, Channel, ToCaller, ToHelper};
use crate::authenticate::{Conversation, ConversationError};

/// The core's conversation, carried over the pipe to the caller's real one.
pub struct PipeConversation<'c> {
    pub channel: &'c mut Channel,
}

impl PipeConversation<'_> {
    /// Sends a question and returns its reply: an answer (Some(None) for NULL) or None
    /// for `Done`.
    fn exchange(
        &mut self,
        question: &ToCaller<'_>,
    ) -> Result<Option<Option<Zeroizing<Vec<u8>>>>, ConversationError> {
        self.channel.send(question).map_err(|_| ConversationError)?;
        let frame = self.channel.receive().map_err(|_| ConversationError)?;
        match serde_json::from_slice(&frame).map_err(|_| ConversationError)? {
            ToHelper::Answer { hex: Some(text) } => {
                Ok(Some(Some(unhex(text).map_err(|_| ConversationError)?)))
            }
            ToHelper::Answer { hex: None } => Ok(Some(None)),
            ToHelper::Done => Ok(None),
            ToHelper::Failed | ToHelper::Login(_) | ToHelper::Me(_) => Err(ConversationError),
        }
    }

    fn answer(
        &mut self,
        question: &ToCaller<'_>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.exchange(question)?.ok_or(ConversationError)
    }

    fn done(&mut self, question: &ToCaller<'_>) -> Result<(), ConversationError> {
        match self.exchange(question)? {
            None => Ok(()),
            Some(_) => Err(ConversationError),
        }
    }
}

impl Conversation for PipeConversation<'_> {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.answer(&ToCaller::Ask {
            hex: &hex(prompt.as_bytes()),
        })
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        self.done(&ToCaller::Info {
            hex: &hex(text.as_bytes()),
        })
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        self.done(&ToCaller::Error {
            hex: &hex(text.as_bytes()),
        })
    }

    fn request_delay(&mut self, microseconds: u32) {
        // A pipe that fails here fails the next question too.
        let _ = self.channel.send(&ToCaller::Delay { microseconds });
    }

    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.answer(&ToCaller::Authtok)
    }

    fn set_authtok(&mut self, value: &[u8]) -> Result<(), ConversationError> {
        self.done(&ToCaller::SetAuthtok { hex: &hex(value) })
    }
}
