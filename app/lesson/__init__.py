"""The Lesson page's content: the cards' live numbers (`content`) and their figures (`views`)."""
