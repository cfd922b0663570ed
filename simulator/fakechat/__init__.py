"""fakechat."""
